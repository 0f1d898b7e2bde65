package dev.colo.checkpoint.disk;

/**
 * Numbers of the NBD protocol (github.com/NetworkBlockDevice/nbd, doc/proto.md), the fixed-newstyle
 * subset colo serves to QEMU's NBD client: simple replies, no TLS, no structured replies.
 */
final class Nbd {
    private Nbd() {
    }

    static final long NBDMAGIC = 0x4e42444d41474943L; // "NBDMAGIC"
    static final long IHAVEOPT = 0x49484156454F5054L; // "IHAVEOPT"
    static final long OPTION_REPLY_MAGIC = 0x0003e889045565a9L;
    static final int REQUEST_MAGIC = 0x25609513;
    static final int SIMPLE_REPLY_MAGIC = 0x67446698;

    static final int FLAG_FIXED_NEWSTYLE = 1;
    static final int FLAG_NO_ZEROES = 2;

    static final int OPT_EXPORT_NAME = 1;
    static final int OPT_ABORT = 2;
    static final int OPT_LIST = 3;
    static final int OPT_INFO = 6;
    static final int OPT_GO = 7;

    static final int REP_ACK = 1;
    static final int REP_SERVER = 2;
    static final int REP_INFO = 3;
    static final int REP_ERR_UNSUP = 0x80000001;
    static final int REP_ERR_INVALID = 0x80000003;
    static final int REP_ERR_UNKNOWN = 0x80000006;

    static final int INFO_EXPORT = 0;
    static final int INFO_BLOCK_SIZE = 3;

    static final int TFLAG_HAS_FLAGS = 1;
    static final int TFLAG_SEND_FLUSH = 4;
    static final int TFLAG_SEND_FUA = 8;
    static final int TFLAG_SEND_TRIM = 32;
    static final int TFLAG_SEND_WRITE_ZEROES = 64;

    static final int CMD_READ = 0;
    static final int CMD_WRITE = 1;
    static final int CMD_DISC = 2;
    static final int CMD_FLUSH = 3;
    static final int CMD_TRIM = 4;
    static final int CMD_WRITE_ZEROES = 6;

    static final int EIO = 5;
    static final int ENOSPC = 28;
    static final int ENOTSUP = 95;

    /**
     * The largest request colo accepts, announced as the maximum block size (QEMU splits larger
     * writes). One write can travel as a batch of its own, so even incompressible it must fit a link
     * frame ({@link dev.colo.checkpoint.link.LinkProtocol#MAX_FRAME}) with room to spare.
     */
    static final int MAX_REQUEST = 8 << 20;
    /** Options longer than this are not something QEMU sends: the connection is closed. */
    static final int MAX_OPTION = 64 << 10;

    static String commandName(int type) {
        return switch (type) {
            case CMD_READ -> "read";
            case CMD_WRITE -> "write";
            case CMD_DISC -> "disconnect";
            case CMD_FLUSH -> "flush";
            case CMD_TRIM -> "trim";
            case CMD_WRITE_ZEROES -> "write-zeroes";
            default -> "command-" + type;
        };
    }
}
