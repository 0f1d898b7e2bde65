package dev.colo.proxy.compare;

import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

/**
 * The {@code http_date} rule: two HTTP responses that differ only in the value of a {@code Date}
 * header compare equal, if both values are well-formed IMF-fixdates (RFC 9110, always 29 bytes, so
 * the byte streams stay aligned). Every other byte is compared as before.
 *
 * <p>One tracker per TCP flow (the VM's output direction) follows the bytes both sides agreed on
 * and knows where it is in an HTTP/1.x response: its status line, its header lines, a body of
 * known length, the next response of a pipeline. Wherever it is not sure (a flow picked up
 * mid-stream, a chunked or close-delimited body, anything that is not HTTP) it stops for the rest
 * of the flow, so it can never relax a body, a cookie, a token or anything but a Date header value
 * at the start of a header line. Pure; fed by the comparator.
 *
 * <p>A response to {@code HEAD} has a Content-Length but no body, and the tracker sees only the
 * VM's output, so it would count the next response as that body and land inside a later one. So a
 * "body" that begins like a status line ({@code HTTP/1.}, or as much of it as the body is long)
 * ends the tracking of the flow: the next response would have begun exactly there.
 */
final class HttpDateNormalizer {
    /** An IMF-fixdate: {@code Sun, 06 Nov 1994 08:49:37 GMT}. */
    static final int VALUE_LENGTH = 29;
    private static final Pattern IMF_FIXDATE = Pattern.compile(
            "(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT");
    private static final byte[] DATE = "date: ".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] STATUS_START = "HTTP/1.".getBytes(StandardCharsets.US_ASCII);
    private static final int MAX_LINE = 256;

    private enum Where { STATUS_LINE, HEADERS, BODY, UNKNOWN }

    private Where where;
    private final byte[] line = new byte[MAX_LINE];
    private int lineLen;
    private long bodyLeft;
    private long contentLength;
    private boolean chunked;
    private boolean noBody;
    /** How many of the body's first bytes spell the start of {@code HTTP/1.}; -1 once one does not. */
    private int bodyLikeStatus;

    /** @param fromStreamStart the flow is compared from its first byte (else it is picked up mid-stream: unknown) */
    HttpDateNormalizer(boolean fromStreamStart) {
        where = fromStreamStart ? Where.STATUS_LINE : Where.UNKNOWN;
    }

    boolean gaveUp() {
        return where == Where.UNKNOWN;
    }

    /** A byte both sides sent at the next stream offset. */
    void onMatched(int b) {
        switch (where) {
            case UNKNOWN -> {
            }
            case BODY -> {
                if (bodyLikeStatus >= 0 && bodyLikeStatus < STATUS_START.length) {
                    bodyLikeStatus = b == STATUS_START[bodyLikeStatus] ? bodyLikeStatus + 1 : -1;
                }
                if (--bodyLeft == 0) {
                    if (bodyLikeStatus > 0) {
                        where = Where.UNKNOWN; // most likely a HEAD answer followed by the next response
                        return;
                    }
                    startResponse();
                }
            }
            case STATUS_LINE, HEADERS -> {
                if (b == '\n') {
                    endLine();
                } else if (lineLen < MAX_LINE) {
                    line[lineLen++] = (byte) b;
                } else if (where == Where.STATUS_LINE) {
                    where = Where.UNKNOWN;
                } // an overlong header line is kept truncated: only its start matters
            }
        }
    }

    private void startResponse() {
        where = Where.STATUS_LINE;
        lineLen = 0;
        contentLength = -1;
        chunked = false;
        noBody = false;
    }

    private void endLine() {
        int len = lineLen > 0 && line[lineLen - 1] == '\r' ? lineLen - 1 : lineLen;
        String text = new String(line, 0, len, StandardCharsets.ISO_8859_1);
        lineLen = 0;
        if (where == Where.STATUS_LINE) {
            if (!text.startsWith("HTTP/1.") || text.length() < 12) {
                where = Where.UNKNOWN;
                return;
            }
            String code = text.substring(9, 12);
            noBody = code.startsWith("1") || code.equals("204") || code.equals("304");
            contentLength = -1;
            chunked = false;
            where = Where.HEADERS;
            return;
        }
        if (len == 0) {
            // End of the headers.
            if (noBody || contentLength == 0) {
                startResponse();
            } else if (contentLength > 0 && !chunked) {
                bodyLeft = contentLength;
                bodyLikeStatus = 0;
                where = Where.BODY;
            } else {
                where = Where.UNKNOWN; // chunked or close-delimited: where the body ends is not ours to guess
            }
            return;
        }
        String lower = text.toLowerCase(java.util.Locale.ROOT);
        if (lower.startsWith("content-length:")) {
            try {
                long n = Long.parseLong(lower.substring(15).trim());
                if (contentLength >= 0 && contentLength != n || n < 0) {
                    where = Where.UNKNOWN;
                    return;
                }
                contentLength = n;
            } catch (NumberFormatException e) {
                where = Where.UNKNOWN;
            }
        } else if (lower.startsWith("transfer-encoding:")) {
            chunked = true;
        }
    }

    /**
     * At a mismatch: if the bytes agreed so far end inside the value of a {@code Date} header line,
     * how far into the value ({@code 0..28}); -1 if the mismatch is anywhere else.
     */
    int dateValueOffset() {
        if (where != Where.HEADERS || lineLen < DATE.length || lineLen >= DATE.length + VALUE_LENGTH) {
            return -1;
        }
        for (int i = 0; i < DATE.length; i++) {
            int c = line[i] | (i < 4 ? 0x20 : 0);
            if (c != DATE[i]) {
                return -1;
            }
        }
        return lineLen - DATE.length;
    }

    /** The value's bytes agreed so far (after {@code "Date: "}). */
    byte[] valueSoFar() {
        return java.util.Arrays.copyOfRange(line, DATE.length, lineLen);
    }

    /**
     * Both whole values ({@value #VALUE_LENGTH} bytes each, then CR on both sides) are well-formed
     * IMF-fixdates, so they may be taken as equal.
     */
    static boolean bothWellFormed(byte[] primaryValue, byte[] secondaryValue) {
        return primaryValue.length == VALUE_LENGTH + 1 && secondaryValue.length == VALUE_LENGTH + 1
                && primaryValue[VALUE_LENGTH] == '\r' && secondaryValue[VALUE_LENGTH] == '\r'
                && IMF_FIXDATE.matcher(new String(primaryValue, 0, VALUE_LENGTH, StandardCharsets.US_ASCII)).matches()
                && IMF_FIXDATE.matcher(new String(secondaryValue, 0, VALUE_LENGTH, StandardCharsets.US_ASCII)).matches();
    }
}
