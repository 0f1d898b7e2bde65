package dev.colo.hypervisor;

import java.util.Arrays;

/** A saved device-state stream (QEMU migration stream without RAM). Immutable. */
public final class DeviceState {
    private final byte[] bytes;

    public DeviceState(byte[] bytes) {
        this.bytes = bytes.clone();
    }

    public int size() {
        return bytes.length;
    }

    public byte[] bytes() {
        return bytes.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DeviceState other && Arrays.equals(bytes, other.bytes);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(bytes);
    }

    @Override
    public String toString() {
        return "DeviceState[" + bytes.length + " bytes]";
    }
}
