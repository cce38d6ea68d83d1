package io.lockstep.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.Test;

/** The shard processes' control messages, written and read back through their flyweights. */
class ControlMessagesTest {
  @Test
  void configureRoundTripsEveryField() {
    final String reply = "aeron:udp?endpoint=198.18.0.1:40123|mtu=1408";
    final int payload = ConfigureMessage.length(reply);
    final UnsafeBuffer frame = new UnsafeBuffer(new byte[Frame.HEADER_LENGTH + payload]);
    Frame.encode(frame, Frame.TYPE_CONFIGURE, -1, 0xABCDL, 7, 1, 2, 3, payload, 1000);
    ConfigureMessage.encode(frame, 1376, 1 << 20, 600_000L, 2, 5, reply);

    final ConfigureMessage read = new ConfigureMessage().wrap(frame, 0);
    assertEquals(1376, read.chunkSize());
    assertEquals(1 << 20, read.termLength());
    assertEquals(600_000L, read.stepTimeoutMs());
    assertEquals(2, read.modeOrdinal());
    assertEquals(5, read.staleness());
    assertEquals(reply, read.replyChannel());
    assertEquals(ConfigureMessage.FIXED_LENGTH + reply.length(), payload);
  }

  @Test
  void statusCarriesRejectedFramesAndAFailureCutToTheFrame() {
    final UnsafeBuffer frame =
        new UnsafeBuffer(new byte[Frame.HEADER_LENGTH + StatusMessage.FIXED_LENGTH + 16]);
    int length = StatusMessage.encode(frame, 42, null);
    Frame.encode(frame, Frame.TYPE_STATUS, -1, 1L, 9, 0, 0, 0, length, 10);
    final StatusMessage status = new StatusMessage();
    assertEquals(42, status.wrap(frame, 0).rejectedFrames());
    assertNull(status.failure());

    length = StatusMessage.encode(frame, 3, "step 9 timed out after 600 s: ranks 1, 2");
    Frame.encode(frame, Frame.TYPE_STATUS, -1, 1L, 9, 0, 0, 0, length, 10);
    assertEquals(3, status.wrap(frame, 0).rejectedFrames());
    assertEquals("step 9 timed", status.failure().substring(0, 12));
    assertEquals(16, status.failure().length());
  }

  @Test
  void shortPayloadsAreNotRead() {
    final UnsafeBuffer frame = new UnsafeBuffer(new byte[Frame.HEADER_LENGTH + 8]);
    Frame.encode(frame, Frame.TYPE_CONFIGURE, -1, 1L, 0, 0, 1, 1, 8, 10);
    assertNull(new ConfigureMessage().wrap(frame, 0));
    Frame.encode(frame, Frame.TYPE_STATUS, -1, 1L, 0, 0, 1, 1, 4, 10);
    assertNull(new StatusMessage().wrap(frame, 0));
  }
}
