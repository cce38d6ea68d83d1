package io.lockstep.protocol;

import io.aeron.Publication;
import io.aeron.logbuffer.BufferClaim;
import org.agrona.BufferUtil;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;
import org.agrona.UnsafeApi;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.NanoClock;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * Signs frames with the job's {@link FrameKey} and offers them to one publication, header and
 * payload gathered without copying, retrying back-pressure against a deadline; a receiver that was
 * there and went away fails the send at once. While it waits it runs {@code onBackPressure}, so a
 * peer that both sends and receives keeps draining its inbound stream and two peers never block
 * each other.
 */
public final class FramePublisher {
  private final Publication publication;
  private static final long FLOAT_ARRAY_BASE = UnsafeApi.arrayBaseOffset(float[].class);

  private final UnsafeBuffer header = new UnsafeBuffer(new byte[Frame.HEADER_LENGTH]);
  private final BufferClaim claim = new BufferClaim();
  private final FrameTag tag;
  private final NanoClock clock;
  private final IdleStrategy idle;
  private final long timeoutNs;
  private final Runnable onBackPressure;
  private final String role;
  private UnsafeBuffer staging;
  private boolean delivered;

  public FramePublisher(
      Publication publication,
      FrameKey key,
      NanoClock clock,
      IdleStrategy idle,
      long timeoutNs,
      Runnable onBackPressure,
      String role) {
    this.publication = publication;
    this.tag = new FrameTag(key);
    this.clock = clock;
    this.idle = idle;
    this.timeoutNs = timeoutNs;
    this.onBackPressure = onBackPressure;
    this.role = role;
  }

  public Publication publication() {
    return publication;
  }

  public UnsafeBuffer header() {
    return header;
  }

  /** Sends the header last encoded into {@link #header()} followed by the payload bytes. */
  public void send(DirectBuffer payload, int payloadOffset, int payloadLength, long step) {
    tag.sign(header, payload, payloadOffset, payloadLength);
    final long deadlineNs = clock.nanoTime() + timeoutNs;
    idle.reset();
    long result;
    while ((result =
            publication.offer(
                header, 0, Frame.HEADER_LENGTH, payload, payloadOffset, payloadLength))
        <= 0) {
      retry(result, deadlineNs, step);
    }
    delivered = true;
  }

  /**
   * Sends the header last encoded into {@link #header()} followed by {@code payloadLength} bytes of
   * a float array, written straight into the term when the frame fits one Aeron message.
   */
  public void send(float[] payload, int payloadByte, int payloadLength, long step) {
    final int frameLength = Frame.HEADER_LENGTH + payloadLength;
    if (frameLength > publication.maxPayloadLength()) {
      if (staging == null || staging.capacity() < payloadLength) {
        staging = new UnsafeBuffer(BufferUtil.allocateDirectAligned(payloadLength, 64));
      }
      UnsafeApi.copyMemory(
          payload, FLOAT_ARRAY_BASE + payloadByte, null, staging.addressOffset(), payloadLength);
      send(staging, 0, payloadLength, step);
      return;
    }
    final long deadlineNs = clock.nanoTime() + timeoutNs;
    idle.reset();
    long result;
    while ((result = publication.tryClaim(frameLength, claim)) <= 0) {
      retry(result, deadlineNs, step);
    }
    final MutableDirectBuffer term = claim.buffer();
    final int offset = claim.offset();
    term.putBytes(offset, header, 0, Frame.HEADER_LENGTH);
    UnsafeApi.copyMemory(
        payload,
        FLOAT_ARRAY_BASE + payloadByte,
        term.byteArray(),
        term.addressOffset() + offset + Frame.HEADER_LENGTH,
        payloadLength);
    tag.sign(term, offset, frameLength);
    claim.commit();
    delivered = true;
  }

  /**
   * Signs and offers the header last encoded into {@link #header()} and a payload once, with no
   * retry: a best-effort notice (an abort) to a peer that may be gone.
   *
   * @return the publication's result: a new position, or why the offer failed
   */
  public long offerOnce(DirectBuffer payload, int payloadOffset, int payloadLength) {
    tag.sign(header, payload, payloadOffset, payloadLength);
    return publication.offer(header, 0, Frame.HEADER_LENGTH, payload, payloadOffset, payloadLength);
  }

  /** Handles a failed offer or claim: throws when it cannot succeed in time, else waits. */
  private void retry(long result, long deadlineNs, long step) {
    if (result == Publication.CLOSED || result == Publication.MAX_POSITION_EXCEEDED) {
      throw new ParameterServerException(
          role
              + ": step "
              + step
              + ": stream "
              + publication.streamId()
              + " on "
              + publication.channel()
              + (result == Publication.CLOSED ? " is closed" : " reached its maximum position"));
    }
    if (result == Publication.NOT_CONNECTED && delivered) {
      // it had a receiver: a peer that stopped or crashed, not one still starting
      throw new ParameterServerException(
          role
              + ": step "
              + step
              + ": the receiver of stream "
              + publication.streamId()
              + " on "
              + publication.channel()
              + " went away (it stopped or crashed); see its log");
    }
    if (clock.nanoTime() - deadlineNs > 0) {
      throw new ParameterServerException(
          role
              + ": step "
              + step
              + ": could not send for "
              + timeoutNs / 1_000_000
              + " ms ("
              + (result == Publication.NOT_CONNECTED ? "no receiver connected" : "back-pressured")
              + " on stream "
              + publication.streamId()
              + "); check that every peer is alive or raise lockstep.ps.step-timeout");
    }
    onBackPressure.run();
    idle.idle();
  }
}
