package dev.colo.proxy.packet;

import static org.assertj.core.api.Assertions.assertThat;

import dev.colo.proxy.Frames;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

class PacketViewTest {
    @Test
    void parsesTcpWithOptions() {
        ByteBuf b = Frames.tcpBuf(Frames.VM_IP, Frames.CLIENT_IP, 80, 40000, 123, 456, PacketView.TCP_ACK, "hi".getBytes(),
                Frames.VM_MAC, Frames.CLIENT_MAC);
        PacketView v = new PacketView().parse(b);
        assertThat(v.classification()).isEqualTo(Classification.TCP);
        assertThat(v.seq()).isEqualTo(123);
        assertThat(v.ack()).isEqualTo(456);
        assertThat(v.payloadLength()).isEqualTo(2);
        assertThat(v.payloadOffset()).isEqualTo(14 + 20 + 32);
        assertThat(v.flowKey().toString()).isEqualTo("tcp 10.201.0.2:80>10.201.0.1:40000");
        assertThat(v.flowKey().reversed().reversed()).isEqualTo(v.flowKey());
        b.release();
    }

    @Test
    void parsesVlanTaggedAndIpv6() {
        ByteBuf b = Unpooled.buffer();
        b.writeBytes(Frames.CLIENT_MAC).writeBytes(Frames.VM_MAC).writeShort(0x8100).writeShort(42).writeShort(0x86dd);
        b.writeInt(0x60000000).writeShort(8).writeByte(17).writeByte(64);
        b.writeLong(0x20010db800000000L).writeLong(1).writeLong(0x20010db800000000L).writeLong(2);
        b.writeShort(53).writeShort(5353).writeShort(8).writeShort(0);
        PacketView v = new PacketView().parse(b);
        assertThat(v.classification()).isEqualTo(Classification.UDP);
        assertThat(v.vlan()).isEqualTo(42);
        assertThat(v.ipVersion()).isEqualTo(6);
        assertThat(v.srcPort()).isEqualTo(53);
        assertThat(v.afterIpLength()).isEqualTo(8);
        b.release();
    }

    @Test
    void classifiesMalformedInsteadOfThrowing() {
        assertThat(new PacketView().parse(Unpooled.wrappedBuffer(new byte[5])).classification()).isEqualTo(Classification.MALFORMED_ETHERNET);
        ByteBuf tcp = Frames.tcpBuf(1, 2, 3, 4, 5, 6, 0, new byte[0], Frames.VM_MAC, Frames.CLIENT_MAC);
        tcp.setByte(14, 0x44); // IHL 16 bytes: impossible
        assertThat(new PacketView().parse(tcp).classification()).isEqualTo(Classification.MALFORMED_IP);
        tcp.setByte(14, 0x45);
        tcp.setByte(14 + 20 + 12, 0xf0); // TCP data offset 60 > segment
        assertThat(new PacketView().parse(tcp).classification()).isEqualTo(Classification.MALFORMED_L4);
        tcp.setShort(14 + 2, 9999); // IP total length beyond the frame
        assertThat(new PacketView().parse(tcp).classification()).isEqualTo(Classification.MALFORMED_IP);
        tcp.release();
    }

    @Test
    void incrementalChecksumMatchesAFreshOne() {
        ByteBuf b = Frames.tcpBuf(Frames.VM_IP, Frames.CLIENT_IP, 80, 40000, 1000, 2000, PacketView.TCP_ACK, "abc".getBytes(),
                Frames.VM_MAC, Frames.CLIENT_MAC);
        int tcp = 14 + 20;
        int c = Checksums.adjust32(b.getUnsignedShort(tcp + 16), 1000, 0xfffffff0L);
        b.setInt(tcp + 4, 0xfffffff0);
        b.setShort(tcp + 16, c);
        assertThat(Frames.tcpChecksumValid(b)).isTrue();
        b.release();
    }
}
