package dev.colo.host.libvirt;

import dev.colo.host.posix.Fd;
import dev.colo.hypervisor.DeviceState;
import dev.colo.hypervisor.DomainRef;
import dev.colo.hypervisor.HypervisorException;
import dev.colo.hypervisor.HypervisorException.Kind;
import dev.colo.hypervisor.ReusableSvm;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.function.Consumer;

/**
 * An SVM in QEMU's COLO secondary mode. colo is its migration source: the socket its first stream
 * came in on stays open, and each checkpoint is QEMU's COLO message exchange on it (request, reply,
 * then the state, then received and loaded). colo writes the RAM itself, so the RAM part of each
 * checkpoint is empty. Once anything goes wrong the channel is broken for good.
 */
final class ColoSvm implements ReusableSvm {
    private final DomainRef domain;
    private final Fd channel;
    private final Consumer<Duration> lostHeartbeat;
    private boolean broken;
    private boolean released;

    /** @param lostHeartbeat sends QMP {@code x-colo-lost-heartbeat} to the SVM */
    ColoSvm(DomainRef domain, Fd channel, Consumer<Duration> lostHeartbeat) {
        this.domain = domain;
        this.channel = channel;
        this.lostHeartbeat = lostHeartbeat;
    }

    @Override
    public DomainRef domain() {
        return domain;
    }

    /** Waits for the SVM's CHECKPOINT_READY after its first load. */
    void awaitReady(Duration timeout) {
        exchange("wait for the SVM to run", timeout, d -> expect(ColoStream.CHECKPOINT_READY, d));
    }

    @Override
    public void stop(Duration timeout) {
        exchange("stop the SVM", timeout, d -> {
            send(ByteBuffer.allocateDirect(4).putInt(ColoStream.CHECKPOINT_REQUEST).flip(), d);
            expect(ColoStream.CHECKPOINT_REPLY, d);
        });
    }

    @Override
    public void load(DeviceState devices, Duration timeout) {
        byte[] body = ColoStream.devicesBody(devices.bytes());
        exchange("load the checkpoint into the SVM", timeout, d -> {
            send(ColoStream.checkpointLoad(body), d);
            expect(ColoStream.VMSTATE_RECEIVED, d);
            expect(ColoStream.VMSTATE_LOADED, d);
        });
    }

    @Override
    public void release(Duration timeout) {
        if (released) {
            return;
        }
        released = true;
        // Closing first: QEMU's COLO thread then leaves its blocking read, and the failover that
        // follows waits for that thread; with the socket open it would wait for ever.
        channel.close();
        lostHeartbeat.accept(timeout);
    }

    @Override
    public void close() {
        channel.close();
    }

    private interface Step {
        void run(long deadline) throws IOException;
    }

    private void exchange(String what, Duration timeout, Step step) {
        if (broken || released || !channel.isOpen()) {
            throw new HypervisorException(Kind.INVALID_STATE, "cannot " + what + " " + domain.name() + ": its COLO channel is "
                    + (released ? "released (failover)" : "broken by an earlier failure"));
        }
        try {
            step.run(System.nanoTime() + timeout.toNanos());
        } catch (IOException | RuntimeException e) {
            broken = true;
            channel.close();
            if (e instanceof HypervisorException he) {
                throw he;
            }
            throw new HypervisorException(Kind.STREAM, "cannot " + what + " " + domain.name() + ": " + e.getMessage(), e);
        }
    }

    private void send(ByteBuffer b, long deadline) throws IOException {
        channel.writeFully(b, deadline);
    }

    private void expect(int message, long deadline) throws IOException {
        ByteBuffer b = ByteBuffer.allocateDirect(4);
        while (b.hasRemaining()) {
            int n = channel.read(b, deadline);
            if (n < 0) {
                throw new IOException("QEMU closed the COLO channel (it exited or refused the state) while colo waited for message " + message);
            }
            if (n == 0 && System.nanoTime() - deadline >= 0) {
                throw new HypervisorException(Kind.TIMEOUT, "no COLO message " + message + " from " + domain.name() + " in time");
            }
        }
        int got = b.flip().getInt();
        if (got != message) {
            throw new IOException("QEMU sent COLO message " + got + " where " + message + " was expected");
        }
    }
}
