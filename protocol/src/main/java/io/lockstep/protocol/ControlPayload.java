package io.lockstep.protocol;

import java.nio.ByteOrder;
import org.agrona.DirectBuffer;

/**
 * What the shard processes' control messages share: a payload of fixed fields, then UTF-8 text to
 * its end, read in place from the frame that carries it.
 */
abstract class ControlPayload {
  static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;

  private final int fixedLength;
  DirectBuffer buffer;

  /** Where the payload starts in {@link #buffer}. */
  int payload;

  private int payloadLength;

  ControlPayload(int fixedLength) {
    this.fixedLength = fixedLength;
  }

  /**
   * Points at the payload of the frame at {@code frameOffset}.
   *
   * @return false, pointing nowhere new, when the payload is shorter than its fixed fields
   */
  final boolean read(DirectBuffer buffer, int frameOffset) {
    final int length = Frame.payloadLength(buffer, frameOffset);
    if (length < fixedLength) {
      return false;
    }
    this.buffer = buffer;
    this.payload = frameOffset + Frame.HEADER_LENGTH;
    this.payloadLength = length;
    return true;
  }

  /** The bytes of text after the fixed fields. */
  final int textLength() {
    return payloadLength - fixedLength;
  }

  /** The text after the fixed fields. */
  final String text() {
    return buffer.getStringWithoutLengthUtf8(payload + fixedLength, textLength());
  }
}
