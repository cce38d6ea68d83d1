package io.lockstep.protocol;

import java.nio.charset.StandardCharsets;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;

/**
 * The payload of a {@link Frame#TYPE_STATUS} frame: a shard process tells the driver how its job
 * stands. The frame's header carries the job id, the steps completed (step) and the shard's index
 * (chunk index); {@link Frame#FLAG_PERMANENT} marks a failure a retry would repeat.
 *
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------------------------------------------------------+
 *  |                       rejected frames                         |  0
 *  |                                                               |
 *  +---------------------------------------------------------------+
 *  |          the failure, UTF-8; empty while healthy ...          |  8
 * </pre>
 *
 * Offsets are from the payload's first byte, {@link Frame#HEADER_LENGTH} into the frame; the count
 * is little-endian.
 */
public final class StatusMessage extends ControlPayload {

  /** The payload's bytes before the failure's text. */
  public static final int FIXED_LENGTH = 8;

  public StatusMessage() {
    super(FIXED_LENGTH);
  }

  /**
   * Reads the STATUS frame at {@code frameOffset}.
   *
   * @param buffer the frame's buffer
   * @param frameOffset where the frame's header starts
   * @return this flyweight, or null when the payload is shorter than {@link #FIXED_LENGTH}
   */
  public StatusMessage wrap(DirectBuffer buffer, int frameOffset) {
    return read(buffer, frameOffset) ? this : null;
  }

  /** Frames the shard dropped: unsigned, malformed or another job's. */
  public long rejectedFrames() {
    return buffer.getLong(payload, ORDER);
  }

  /** The shard's failure, or null while it is healthy. */
  public String failure() {
    return textLength() == 0 ? null : text();
  }

  /**
   * Writes the payload after a header {@link Frame#encode} wrote.
   *
   * @param frame the frame, from its header's first byte
   * @param rejectedFrames the frames the shard dropped
   * @param failure the failure, or null
   * @return the payload's length, the failure cut to what {@code frame} holds
   */
  public static int encode(MutableDirectBuffer frame, long rejectedFrames, String failure) {
    final byte[] text = failure == null ? new byte[0] : failure.getBytes(StandardCharsets.UTF_8);
    final int textLength =
        Math.min(text.length, frame.capacity() - Frame.HEADER_LENGTH - FIXED_LENGTH);
    frame.putLong(Frame.HEADER_LENGTH, rejectedFrames, ORDER);
    frame.putBytes(Frame.HEADER_LENGTH + FIXED_LENGTH, text, 0, textLength);
    return FIXED_LENGTH + textLength;
  }
}
