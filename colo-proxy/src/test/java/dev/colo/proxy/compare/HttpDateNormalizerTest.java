package dev.colo.proxy.compare;

import static dev.colo.proxy.packet.PacketView.TCP_ACK;
import static dev.colo.proxy.packet.PacketView.TCP_SYN;
import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.proxy.Frames;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The http_date rule: only a well-formed, equal-length Date value may differ; nothing else ever. */
class HttpDateNormalizerTest {
    static final long MS = 1_000_000L;
    final Frames f = new Frames();
    final RecordingSink sink = new RecordingSink();
    Comparator cmp = new Comparator(CompareConfig.defaults().withCompareTimeoutMs(100).withHttpDate(true), sink);
    long now = 1_000 * MS;
    int port = 41000;

    @AfterEach
    void noLeaks() {
        cmp.close();
        assertThat(f.unreleased()).as("buffers not released").isZero();
    }

    static byte[] response(String date, String cookie, String body) {
        return ("HTTP/1.1 200 OK\r\nDate: " + date + "\r\nSet-Cookie: sid=" + cookie + "\r\nContent-Length: " + body.length() + "\r\n\r\n" + body)
                .getBytes(StandardCharsets.US_ASCII);
    }

    static final String D1 = "Wed, 02 Dec 2026 19:00:01 GMT";
    static final String D2 = "Wed, 02 Dec 2026 19:00:02 GMT";

    /** A new connection (from its SYN-ACK), then each side's stream cut at its own points. */
    void compare(byte[] primary, int[] pCuts, byte[] secondary, int[] sCuts) {
        int p0 = 5000;
        int s0 = 9000;
        port++;
        cmp.onPrimary(f.tcp(80, port, p0, 1001, TCP_SYN | TCP_ACK, new byte[0]), now);
        cmp.onSecondary(f.tcp(80, port, s0, 1001, TCP_SYN | TCP_ACK, new byte[0]), now);
        send(true, primary, pCuts, p0 + 1);
        send(false, secondary, sCuts, s0 + 1);
    }

    void send(boolean primary, byte[] data, int[] cuts, long seq) {
        int from = 0;
        for (int i = 0; i <= cuts.length; i++) {
            int to = i < cuts.length ? cuts[i] : data.length;
            if (to <= from) {
                continue;
            }
            var frame = f.tcp(80, port, seq + from, 1001, TCP_ACK, Arrays.copyOfRange(data, from, to));
            if (primary) {
                cmp.onPrimary(frame, now);
            } else {
                cmp.onSecondary(frame, now);
            }
            from = to;
        }
    }

    @Test
    void responsesThatDifferOnlyInTheirDateMatchWhereverTheSegmentsAreCut() {
        byte[] a = response(D1, "abc", "hello");
        byte[] b = response(D2, "abc", "hello");
        for (int cut = 1; cut < a.length; cut++) {
            compare(a, new int[] {cut}, b, new int[] {a.length - cut});
        }
        assertThat(sink.checkpoints).as("no checkpoint for a Date that differs").isEmpty();
        assertThat(cmp.stats().normalizedHttpDate()).isEqualTo(a.length - 1);
        assertThat(sink.released).as("every SYN-ACK and every segment left").hasSize(3 * (a.length - 1));
    }

    @Test
    void pipelinedResponsesAreEachNormalized() {
        byte[] a = concat(response(D1, "x", "one"), response(D2, "x", "two!"));
        byte[] b = concat(response(D2, "x", "one"), response(D1, "x", "two!"));
        Random r = new Random(7);
        for (int trial = 0; trial < 50; trial++) {
            compare(a, new int[] {r.nextInt(a.length), r.nextInt(a.length)}, b, new int[] {r.nextInt(b.length)});
        }
        assertThat(sink.checkpoints).isEmpty();
        assertThat(cmp.stats().normalizedHttpDate()).isEqualTo(100);
    }

    @Test
    void aCookieThatDiffersIsADivergenceEvenNextToADateThatDiffers() {
        compare(response(D1, "abc", "hello"), new int[] {40}, response(D2, "abd", "hello"), new int[0]);
        assertThat(sink.checkpoints).hasSize(1);
        assertThat(sink.checkpoints.get(0).reason()).isEqualTo(Reason.PAYLOAD_MISMATCH);
    }

    @Test
    void aDateInTheBodyIsNeverNormalized() {
        String body = "Date: " + D1;
        String other = "Date: " + D2;
        compare(response(D1, "a", body), new int[0], response(D1, "a", other), new int[0]);
        assertThat(sink.checkpoints).as("a body is compared byte for byte").hasSize(1);
    }

    @Test
    void malformedOrUnequalLengthDatesAreDivergences() {
        compare(response(D1, "a", "b"), new int[0], response("Wed, 2 Dec 2026 19:00:02 GMT", "a", "b"), new int[0]);
        assertThat(sink.checkpoints).as("one byte shorter: the streams would slide apart").hasSize(1);
        assertThat(cmp.stats().normalizedHttpDate()).isZero();
        cmp.close();
        sink.checkpoints.clear();
        cmp = new Comparator(CompareConfig.defaults().withCompareTimeoutMs(100).withHttpDate(true), sink);
        compare(response(D1, "a", "b"), new int[0], response("Wed, 02 Dec 2026 19:00:02 XYZ", "a", "b"), new int[0]);
        assertThat(sink.checkpoints).as("not an IMF-fixdate").hasSize(1);
        assertThat(cmp.stats().normalizedHttpDate()).isZero();
    }

    @Test
    void afterABodyOfUnknownLengthTheFlowIsComparedStrictly() {
        byte[] a = concat("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".getBytes(StandardCharsets.US_ASCII),
                response(D1, "a", "b"));
        byte[] b = concat("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".getBytes(StandardCharsets.US_ASCII),
                response(D2, "a", "b"));
        compare(a, new int[0], b, new int[0]);
        assertThat(sink.checkpoints).hasSize(1);
    }

    /** A HEAD answer: the Content-Length of the body it does not carry. */
    static byte[] headAnswer(String date, int contentLength) {
        return ("HTTP/1.1 200 OK\r\nDate: " + date + "\r\nContent-Length: " + contentLength + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII);
    }

    @Test
    void afterAHeadAnswerTheFlowIsComparedStrictlyEvenWhereABodyLooksLikeAResponse() {
        // The tracker sees no requests: after a HEAD answer it would count the next response as its
        // body. Here that would land it inside the second body, right at a fake response head whose
        // Date differs (a page that shows raw HTTP): that must never be relaxed.
        String fake = "HTTP/1.1 200 OK\r\nDate: ";
        for (String d : new String[] {D1, D2}) {
            String page1 = "x".repeat(10);
            byte[] next = response(D1, "a", page1 + fake + d + "\r\n\r\n");
            int skip = next.length - (fake.length() + d.length() + 4) - 0; // the HEAD's Content-Length lands on the fake head
            byte[] a = concat(headAnswer(D1, skip), next);
            byte[] b = concat(headAnswer(D1, skip), response(D1, "a", page1 + fake + (d.equals(D1) ? D2 : D1) + "\r\n\r\n"));
            assertThat(checkpointsAlone(a, b)).as("a body difference is a divergence").isEqualTo(1);
        }
    }

    /** Checkpoints a fresh comparator asks for on one connection (a comparator asks once until the checkpoint is done). */
    int checkpointsAlone(byte[] primary, byte[] secondary) {
        cmp.close();
        sink.checkpoints.clear();
        cmp = new Comparator(CompareConfig.defaults().withCompareTimeoutMs(100).withHttpDate(true), sink);
        compare(primary, new int[0], secondary, new int[0]);
        assertThat(cmp.stats().normalizedHttpDate()).isZero();
        return sink.checkpoints.size();
    }

    @Test
    void aHeadAnswerWithAShortContentLengthAlsoEndsTheTracking() {
        for (int cl = 1; cl <= 8; cl++) {
            assertThat(checkpointsAlone(concat(headAnswer(D1, cl), response(D1, "a", "b")), concat(headAnswer(D1, cl), response(D2, "a", "b"))))
                    .as("Content-Length %d: the second Date is never relaxed", cl).isEqualTo(1);
        }
    }

    @Test
    void aBodyThatDoesNotBeginLikeAStatusLineKeepsTheTracking() {
        byte[] a = concat(response(D1, "x", "HTTP"), concat(response(D1, "x", "Hello"), response(D1, "x", "two")));
        byte[] b = concat(response(D1, "x", "HTTP"), concat(response(D1, "x", "Hello"), response(D2, "x", "two")));
        assertThat(checkpointsAlone(a, b)).as("a 4-byte body that spells HTTP gives up: conservative").isEqualTo(1);
        cmp.close();
        sink.checkpoints.clear();
        cmp = new Comparator(CompareConfig.defaults().withCompareTimeoutMs(100).withHttpDate(true), sink);
        a = concat(response(D1, "x", "Hello"), response(D1, "x", "two"));
        b = concat(response(D1, "x", "Hello"), response(D2, "x", "two"));
        compare(a, new int[0], b, new int[0]);
        assertThat(sink.checkpoints).as("Hello is a body, not a status line").isEmpty();
        assertThat(cmp.stats().normalizedHttpDate()).isEqualTo(1);
    }

    @Test
    void offByDefault() {
        cmp.close();
        cmp = new Comparator(CompareConfig.defaults().withCompareTimeoutMs(100), sink);
        compare(response(D1, "a", "b"), new int[0], response(D2, "a", "b"), new int[0]);
        assertThat(sink.checkpoints).hasSize(1);
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
