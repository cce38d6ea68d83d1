package io.lockstep.protocol;

import java.nio.charset.StandardCharsets;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

/**
 * The payload of a {@link Frame#TYPE_CONFIGURE} frame: a driver asks a shard process to serve one
 * shard of a job. The frame's header carries the job id, the first step (step), the shard's index
 * (chunk index), the shard count (chunk count), the workers (sample count) and the shard's range of
 * floats (parameter count); its tag is signed with the job's key.
 *
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------------------------------------------------------+
 *  |                      chunk size (bytes)                       |  0
 *  +---------------------------------------------------------------+
 *  |                      term length (bytes)                      |  4
 *  +---------------------------------------------------------------+
 *  |                       step timeout (ms)                       |  8
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |         synchronization mode (the conf SyncMode ordinal)      | 16
 *  +---------------------------------------------------------------+
 *  |                      staleness (steps)                        | 20
 *  +---------------------------------------------------------------+
 *  |              driver's reply channel, UTF-8 ...                | 24
 * </pre>
 *
 * Offsets are from the payload's first byte, {@link Frame#HEADER_LENGTH} into the frame; all
 * integers little-endian.
 */
public final class ConfigureMessage extends ControlPayload {
  private static final int CHUNK_SIZE_OFFSET = 0;
  private static final int TERM_LENGTH_OFFSET = 4;
  private static final int STEP_TIMEOUT_OFFSET = 8;
  private static final int MODE_OFFSET = 16;
  private static final int STALENESS_OFFSET = 20;

  /** The payload's bytes before the reply channel. */
  public static final int FIXED_LENGTH = 24;

  public ConfigureMessage() {
    super(FIXED_LENGTH);
  }

  /**
   * Reads the CONFIGURE frame at {@code frameOffset}.
   *
   * @param buffer the frame's buffer
   * @param frameOffset where the frame's header starts
   * @return this flyweight, or null when the payload is shorter than {@link #FIXED_LENGTH}
   */
  public ConfigureMessage wrap(DirectBuffer buffer, int frameOffset) {
    return read(buffer, frameOffset) ? this : null;
  }

  /** The largest chunk, in bytes, of the job's gradient frames. */
  public int chunkSize() {
    return buffer.getInt(payload + CHUNK_SIZE_OFFSET, ORDER);
  }

  /** The term length of the job's streams, in bytes. */
  public int termLength() {
    return buffer.getInt(payload + TERM_LENGTH_OFFSET, ORDER);
  }

  /** How long a step may take, in milliseconds. */
  public long stepTimeoutMs() {
    return buffer.getLong(payload + STEP_TIMEOUT_OFFSET, ORDER);
  }

  /** The synchronization mode's ordinal, unchecked. */
  public int modeOrdinal() {
    return buffer.getInt(payload + MODE_OFFSET, ORDER);
  }

  /** How many steps a worker may run ahead in stale-synchronous mode. */
  public int staleness() {
    return buffer.getInt(payload + STALENESS_OFFSET, ORDER);
  }

  /** The channel the shard answers the driver on. */
  public String replyChannel() {
    return text();
  }

  /**
   * The payload's length for a reply channel.
   *
   * @param replyChannel the driver's reply channel
   * @return the payload's bytes
   */
  public static int length(String replyChannel) {
    return FIXED_LENGTH + replyChannel.getBytes(StandardCharsets.UTF_8).length;
  }

  /**
   * Writes the payload after a header {@link Frame#encode} wrote, with {@link #length} bytes.
   *
   * @param frame the frame, from its header's first byte
   * @param chunkSize the largest chunk in bytes
   * @param termLength the streams' term length in bytes
   * @param stepTimeoutMs the step timeout in milliseconds
   * @param modeOrdinal the synchronization mode's ordinal
   * @param staleness the staleness bound in steps
   * @param replyChannel the driver's reply channel
   */
  public static void encode(
      MutableDirectBuffer frame,
      int chunkSize,
      int termLength,
      long stepTimeoutMs,
      int modeOrdinal,
      int staleness,
      String replyChannel) {
    final int payload = Frame.HEADER_LENGTH;
    frame.putInt(payload + CHUNK_SIZE_OFFSET, chunkSize, ORDER);
    frame.putInt(payload + TERM_LENGTH_OFFSET, termLength, ORDER);
    frame.putLong(payload + STEP_TIMEOUT_OFFSET, stepTimeoutMs, ORDER);
    frame.putInt(payload + MODE_OFFSET, modeOrdinal, ORDER);
    frame.putInt(payload + STALENESS_OFFSET, staleness, ORDER);
    frame.putBytes(payload + FIXED_LENGTH, replyChannel.getBytes(StandardCharsets.UTF_8));
  }
}
