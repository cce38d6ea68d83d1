package io.lockstep.ps.client;

import static io.aeron.logbuffer.FrameDescriptor.FRAME_ALIGNMENT;

import io.aeron.Publication;
import io.aeron.protocol.DataHeaderFlyweight;
import io.lockstep.protocol.ChunkCodec;
import io.lockstep.protocol.ChunkLayout;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FramePublisher;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.SharedGradients;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * Sends one shard this worker's frames: the open step's gradient chunks (encoded, framed, or
 * written into shared memory), a statistics round, an abort.
 */
final class ShardProxy {
  final ServerAddress address;

  /** Where the shard's range begins, in bytes of the whole vector. */
  final int firstByte;

  final ChunkLayout layout;
  private final ExchangeStep open;
  private final Publication gradients;
  private final FramePublisher publisher;

  /** The job's shared gradients, or null where frames carry the chunks. */
  private final SharedGradients shared;

  /** Null without compression. */
  private final GradientEncoder encoder;

  private int chunksSent;

  ShardProxy(
      ExchangeStep open,
      ServerAddress address,
      int firstByte,
      FramePublisher publisher,
      SharedGradients shared,
      GradientEncoder encoder) {
    this.open = open;
    this.address = address;
    this.firstByte = firstByte;
    this.layout = address.layout();
    this.publisher = publisher;
    this.gradients = publisher.publication();
    this.shared = shared;
    this.encoder = encoder;
  }

  Publication publication() {
    return gradients;
  }

  /** Makes ready for a new step: none of its chunks has gone. */
  void reset() {
    chunksSent = 0;
  }

  boolean hasUnsent() {
    return chunksSent < layout.chunkCount();
  }

  /**
   * Whether the stream takes the next chunk now, without waiting: its window (what the media driver
   * has not yet sent, against what the receiver allows) has room for the largest frame.
   */
  boolean canSendNow() {
    final int payload =
        shared != null ? 0 : encoder == null ? address.chunkBytes() : encoder.out().capacity();
    return gradients.availableWindow()
        >= DataHeaderFlyweight.HEADER_LENGTH + Frame.HEADER_LENGTH + payload + FRAME_ALIGNMENT;
  }

  /** Where in the whole vector the next chunk to send begins. */
  long nextUnsentByte() {
    return firstByte + (long) layout.offsetBytes(layout.chunkSentAt(chunksSent));
  }

  /** Sends the next chunk, newest first. */
  void sendNext() {
    sendChunk(layout.chunkSentAt(chunksSent++));
  }

  private void sendChunk(int chunk) {
    if (shared != null) {
      sendShared(chunk);
      return;
    }
    final int length =
        encoder == null
            ? layout.lengthBytes(chunk)
            : encoder.encode(open.target, firstByte, chunk, open.sampleCount);
    encodeHeader(chunk, length, encoder == null ? ChunkCodec.F32 : encoder.encoding());
    if (encoder == null) {
      publisher.send(open.target, firstByte + layout.offsetBytes(chunk), length, open.step);
    } else {
      publisher.send(encoder.out(), 0, length, open.step);
    }
  }

  /** Writes a chunk into this worker's shared slot, then sends its frame, with no payload. */
  private void sendShared(int chunk) {
    final int at = firstByte + layout.offsetBytes(chunk);
    shared.slot(open.rank).putBytes(at, open.target, at, layout.lengthBytes(chunk));
    encodeHeader(chunk, 0, ChunkCodec.SHARED);
    publisher.send(open.target, 0, 0, open.step);
  }

  /** Writes the open step's gradient header for a chunk of {@code length} payload bytes. */
  private void encodeHeader(int chunk, int length, byte encoding) {
    Frame.encode(
        publisher.header(),
        Frame.TYPE_GRADIENT,
        open.rank,
        address.jobId(),
        open.step,
        chunk,
        layout.chunkCount(),
        open.sampleCount,
        length,
        address.parameterCount());
    Frame.encodingAndFlags(publisher.header(), encoding, open.flags);
  }

  /**
   * Sends the open statistics round: {@code bytes} of {@code values} as one frame.
   *
   * @param values the worker's statistics
   * @param bytes their length
   */
  void sendStatistics(UnsafeBuffer values, int bytes) {
    Frame.encode(
        publisher.header(),
        Frame.TYPE_STATISTICS,
        open.rank,
        address.jobId(),
        open.step,
        open.statisticsRound,
        1,
        0,
        bytes,
        address.parameterCount());
    publisher.send(values, 0, bytes, open.step);
  }

  /**
   * Offers an abort once, without waiting: the server may be gone.
   *
   * @param step the step the worker was at
   * @param reason the reason in UTF-8, cut to one chunk
   * @param permanent whether a retry would fail the same way
   */
  void abort(long step, byte[] reason, boolean permanent) {
    final int length = Math.min(reason.length, address.chunkBytes());
    Frame.encode(
        publisher.header(),
        Frame.TYPE_ABORT,
        open.rank,
        address.jobId(),
        step,
        0,
        0,
        0,
        length,
        address.parameterCount());
    Frame.encodingAndFlags(publisher.header(), (byte) 0, permanent ? Frame.FLAG_PERMANENT : 0);
    publisher.offerOnce(new UnsafeBuffer(reason), 0, length);
  }
}
