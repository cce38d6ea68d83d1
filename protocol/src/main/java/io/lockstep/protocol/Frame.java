package io.lockstep.protocol;

import java.nio.ByteOrder;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

/**
 * Flyweight over one Lockstep frame: a fixed header followed by a payload of little-endian floats
 * (gradient and result chunks, statistics and their sums) or UTF-8 text (abort).
 *
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-------------------------------+---------------+---------------+
 *  |         magic 0x4C53          |    version    |     type      |  0
 *  +-------------------------------+---------------+---------------+
 *  |                             rank                              |  4
 *  +---------------------------------------------------------------+
 *  |                            job id                             |  8
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |                             step                              | 16
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |                          chunk index                          | 24
 *  +---------------------------------------------------------------+
 *  |                          chunk count                          | 28
 *  +---------------------------------------------------------------+
 *  |                         sample count                          | 32
 *  +---------------------------------------------------------------+
 *  |                     payload length (bytes)                    | 36
 *  +---------------------------------------------------------------+
 *  |                   parameter count (floats)                    | 40
 *  +---------------+---------------+-------------------------------+
 *  |   encoding    |     flags     |           reserved            | 44
 *  +---------------+---------------+-------------------------------+
 *  |                              tag                              | 48
 *  |                                                               |
 *  |                                                               |
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |                         payload ...                           | 64
 * </pre>
 *
 * All integers are little-endian. The header is 8-byte aligned so payload floats are aligned.
 *
 * <p>The tag authenticates the frame: HMAC-SHA256 with the job's {@link FrameKey} over bytes 0 to
 * 47 and the payload, truncated to 16 bytes ({@link FrameTag}). Receivers verify it before they use
 * anything of the frame beyond its routing fields, and drop and count frames whose tag is wrong:
 * another job's, a peer's without the key, or frames changed on the way.
 *
 * <p>The encoding says how a gradient or result chunk's payload is encoded ({@link ChunkCodec}:
 * float32, scaled half precision, bfloat16 or sparse); other frames carry float32 or text. Flags:
 * {@link #FLAG_FINAL} on an asynchronous update asks for the parameters once every worker has sent
 * that step; {@link #FLAG_PERMANENT} on an abort says a retry would fail the same way.
 *
 * <p>A step's gradient chunks travel newest first, chunk {@code count - 1} down to 0 ({@link
 * ChunkLayout#chunkSentAt}); the results may come back in any order.
 *
 * <p>Statistics frames carry a small vector that the server sums over the workers within a step,
 * before the gradient (SyncBatchNorm's per-channel sums): the chunk index field holds the round,
 * counted from 0 within the step, and the chunk count is 1.
 */
public final class Frame {
  static final short MAGIC = 0x4C53;
  static final byte VERSION = 4;

  /** On an asynchronous update: the stage's last step; answer when every worker has sent it. */
  public static final byte FLAG_FINAL = 1;

  /**
   * On an abort, and on the status of a shard that aborted: the failure would recur if the stage
   * ran again (a worker found its data or configuration wrong), so the driver does not retry it.
   */
  public static final byte FLAG_PERMANENT = 2;

  public static final byte TYPE_GRADIENT = 1;
  public static final byte TYPE_RESULT = 2;
  public static final byte TYPE_ABORT = 3;
  public static final byte TYPE_STATISTICS = 4;
  public static final byte TYPE_STATISTICS_RESULT = 5;

  /** Driver to a shard process: serve a job ({@link ConfigureMessage}). */
  public static final byte TYPE_CONFIGURE = 6;

  /** Shard process to driver: the job's streams are up, or how far it got and why it failed. */
  public static final byte TYPE_STATUS = 7;

  /** Driver to a shard process: the job is over. */
  public static final byte TYPE_END = 8;

  static final int MAGIC_OFFSET = 0;
  static final int VERSION_OFFSET = 2;
  static final int TYPE_OFFSET = 3;
  public static final int RANK_OFFSET = 4;
  public static final int JOB_ID_OFFSET = 8;
  public static final int STEP_OFFSET = 16;
  public static final int CHUNK_INDEX_OFFSET = 24;
  public static final int CHUNK_COUNT_OFFSET = 28;
  public static final int SAMPLES_OFFSET = 32;
  public static final int PAYLOAD_LENGTH_OFFSET = 36;
  public static final int PARAMETER_COUNT_OFFSET = 40;
  public static final int ENCODING_OFFSET = 44;
  static final int FLAGS_OFFSET = 45;
  static final int TAG_OFFSET = 48;
  static final int TAG_LENGTH = 16;
  public static final int HEADER_LENGTH = 64;

  private static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;

  private Frame() {}

  public static void encode(
      MutableDirectBuffer buffer,
      byte type,
      int rank,
      long jobId,
      long step,
      int chunkIndex,
      int chunkCount,
      int samples,
      int payloadLength,
      int parameterCount) {
    buffer.putShort(MAGIC_OFFSET, MAGIC, ORDER);
    buffer.putByte(VERSION_OFFSET, VERSION);
    buffer.putByte(TYPE_OFFSET, type);
    buffer.putInt(RANK_OFFSET, rank, ORDER);
    buffer.putLong(JOB_ID_OFFSET, jobId, ORDER);
    buffer.putLong(STEP_OFFSET, step, ORDER);
    buffer.putInt(CHUNK_INDEX_OFFSET, chunkIndex, ORDER);
    buffer.putInt(CHUNK_COUNT_OFFSET, chunkCount, ORDER);
    buffer.putInt(SAMPLES_OFFSET, samples, ORDER);
    buffer.putInt(PAYLOAD_LENGTH_OFFSET, payloadLength, ORDER);
    buffer.putInt(PARAMETER_COUNT_OFFSET, parameterCount, ORDER);
    buffer.putInt(PARAMETER_COUNT_OFFSET + 4, 0, ORDER);
    buffer.putLong(TAG_OFFSET, 0);
    buffer.putLong(TAG_OFFSET + Long.BYTES, 0);
  }

  /** Returns null when the header is well formed for a frame of {@code length} bytes. */
  public static String headerProblem(DirectBuffer buffer, int offset, int length) {
    if (length < HEADER_LENGTH) {
      return "short frame";
    }
    if (buffer.getShort(offset + MAGIC_OFFSET, ORDER) != MAGIC) {
      return "bad magic";
    }
    if (buffer.getByte(offset + VERSION_OFFSET) != VERSION) {
      return "unsupported version";
    }
    final int payloadLength = payloadLength(buffer, offset);
    if (payloadLength < 0 || payloadLength != length - HEADER_LENGTH) {
      return "payload length mismatch";
    }
    return null;
  }

  /**
   * Returns null when the frame is well formed and comes from a worker of the job, else why not:
   * what both kinds of server agent check first.
   */
  public static String peerProblem(
      DirectBuffer buffer, int offset, int length, long jobId, int workers) {
    final String header = headerProblem(buffer, offset, length);
    if (header != null) {
      return header;
    }
    if (jobId(buffer, offset) != jobId) {
      return "frame of job " + jobId(buffer, offset);
    }
    final int rank = rank(buffer, offset);
    return rank < 0 || rank >= workers ? "unknown rank " + rank : null;
  }

  public static byte type(DirectBuffer buffer, int offset) {
    return buffer.getByte(offset + TYPE_OFFSET);
  }

  public static int rank(DirectBuffer buffer, int offset) {
    return buffer.getInt(offset + RANK_OFFSET, ORDER);
  }

  public static long jobId(DirectBuffer buffer, int offset) {
    return buffer.getLong(offset + JOB_ID_OFFSET, ORDER);
  }

  public static long step(DirectBuffer buffer, int offset) {
    return buffer.getLong(offset + STEP_OFFSET, ORDER);
  }

  public static int chunkIndex(DirectBuffer buffer, int offset) {
    return buffer.getInt(offset + CHUNK_INDEX_OFFSET, ORDER);
  }

  public static int chunkCount(DirectBuffer buffer, int offset) {
    return buffer.getInt(offset + CHUNK_COUNT_OFFSET, ORDER);
  }

  public static int samples(DirectBuffer buffer, int offset) {
    return buffer.getInt(offset + SAMPLES_OFFSET, ORDER);
  }

  public static int payloadLength(DirectBuffer buffer, int offset) {
    return buffer.getInt(offset + PAYLOAD_LENGTH_OFFSET, ORDER);
  }

  public static int parameterCount(DirectBuffer buffer, int offset) {
    return buffer.getInt(offset + PARAMETER_COUNT_OFFSET, ORDER);
  }

  public static byte encoding(DirectBuffer buffer, int offset) {
    return buffer.getByte(offset + ENCODING_OFFSET);
  }

  public static byte flags(DirectBuffer buffer, int offset) {
    return buffer.getByte(offset + FLAGS_OFFSET);
  }

  /** Sets the encoding and flags of the header last written by {@link #encode} (both 0 there). */
  public static void encodingAndFlags(MutableDirectBuffer buffer, byte encoding, byte flags) {
    buffer.putByte(ENCODING_OFFSET, encoding);
    buffer.putByte(FLAGS_OFFSET, flags);
  }
}
