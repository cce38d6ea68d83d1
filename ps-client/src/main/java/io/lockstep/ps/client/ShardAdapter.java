package io.lockstep.ps.client;

import io.aeron.FragmentAssembler;
import io.aeron.Image;
import io.aeron.Subscription;
import io.aeron.logbuffer.FragmentHandler;
import io.aeron.logbuffer.Header;
import io.lockstep.protocol.ChunkCodec;
import io.lockstep.protocol.ChunkLayout;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FrameTag;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.SharedGradients;
import java.util.Arrays;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.NanoClock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Takes one shard's frames to this worker: answer chunks into the open step's vector, the sum of
 * the open statistics round, an abort. Verifies each frame's tag first, and drops and counts what
 * this worker does not await: another job's frames, forgeries, replays.
 */
final class ShardAdapter implements FragmentHandler {
  private static final Logger LOG = LoggerFactory.getLogger(GradientExchange.class);

  final Subscription results;
  private final ExchangeStep open;
  private final ServerAddress address;
  private final int firstByte;
  private final ChunkLayout layout;
  private final FrameTag tag;
  private final FragmentAssembler assembler = new FragmentAssembler(this);
  private final NanoClock clock;

  /** The job's shared gradients, or null where frames carry the answers. */
  private final SharedGradients shared;

  /** Names the shard in an abort's reason, where there are several; else empty. */
  private final String shardLabel;

  private final boolean[] resultReceived;
  private int chunksReceived;

  /**
   * The stream this job's results came on, once one came: another server on the same endpoint (a
   * restarted one) adds a stream of its own, so only this one's going says the server went.
   */
  private Image server;

  ShardAdapter(
      ExchangeStep open,
      ServerAddress address,
      int firstByte,
      Subscription results,
      SharedGradients shared,
      NanoClock clock,
      boolean named) {
    this.open = open;
    this.address = address;
    this.firstByte = firstByte;
    this.layout = address.layout();
    this.results = results;
    this.shared = shared;
    this.clock = clock;
    this.tag = new FrameTag(address.key());
    this.resultReceived = new boolean[layout.chunkCount()];
    this.shardLabel = named ? "shard " + address.shard() + ": " : "";
  }

  /** Makes ready for a new step: none of its answers has come. */
  void reset() {
    chunksReceived = 0;
    Arrays.fill(resultReceived, false);
  }

  /**
   * Takes in what has arrived.
   *
   * @return the fragments read
   */
  int poll() {
    return results.poll(assembler, 64);
  }

  /** How many of the step's answer chunks have come. */
  int chunksReceived() {
    return chunksReceived;
  }

  /** How many answer chunks the step has. */
  int chunkCount() {
    return resultReceived.length;
  }

  boolean complete() {
    return chunksReceived == resultReceived.length;
  }

  /**
   * Whether the shard has gone: its result stream has no publisher left (Aeron notices a vanished
   * UDP publisher after the image liveness timeout) or the Aeron client has closed it.
   */
  boolean serverLost() {
    return server != null ? server.isClosed() : results.isClosed() || !results.isConnected();
  }

  @Override
  public void onFragment(DirectBuffer buffer, int offset, int length, Header header) {
    final String problem = problem(buffer, offset, length);
    if (problem != null) {
      open.rejectedFrames++;
      LOG.debug(
          "worker {}: rejected result frame #{} at step {}: {}",
          open.rank,
          open.rejectedFrames,
          open.step,
          problem);
      return;
    }
    if (server == null) {
      server = (Image) header.context();
    }
    final byte type = Frame.type(buffer, offset);
    if (type == Frame.TYPE_ABORT) {
      open.abortReason =
          shardLabel
              + buffer.getStringWithoutLengthUtf8(
                  offset + Frame.HEADER_LENGTH, Frame.payloadLength(buffer, offset));
      return;
    }
    if (type == Frame.TYPE_STATISTICS_RESULT) {
      open.statisticsReceived = true;
      open.target.putBytes(0, buffer, offset + Frame.HEADER_LENGTH, open.statisticsBytes);
      return;
    }
    final int chunk = Frame.chunkIndex(buffer, offset);
    final int count = layout.lengthBytes(chunk) / Float.BYTES;
    resultReceived[chunk] = true;
    chunksReceived++;
    final long decodeStartNs = open.awaiting ? clock.nanoTime() : 0;
    open.totalSamples = Frame.samples(buffer, offset);
    if (Frame.encoding(buffer, offset) == ChunkCodec.SHARED) {
      final int at = firstByte + layout.offsetBytes(chunk);
      open.target.putBytes(at, shared.sum(), at, count * Float.BYTES);
    } else {
      ChunkCodec.decode(
          Frame.encoding(buffer, offset),
          buffer,
          offset + Frame.HEADER_LENGTH,
          Frame.payloadLength(buffer, offset),
          open.target,
          firstByte + layout.offsetBytes(chunk),
          count);
    }
    if (open.awaiting) {
      open.decodeNs += clock.nanoTime() - decodeStartNs;
    }
  }

  /**
   * Null when the frame is the server's and this worker waits for it: an abort, the sum of the open
   * statistics round, or an answer chunk of the open step not yet taken; else why not. A frame
   * signed with the job's key but for another step or round, or a second copy of a chunk, is a
   * replay: the server sends each once.
   */
  private String problem(DirectBuffer buffer, int offset, int length) {
    final String header = Frame.headerProblem(buffer, offset, length);
    if (header != null) {
      return header;
    }
    if (Frame.jobId(buffer, offset) != address.jobId()) {
      return "frame of job " + Frame.jobId(buffer, offset);
    }
    if (!tag.verify(buffer, offset, length)) {
      return "a wrong tag (not signed with this job's key)";
    }
    final byte type = Frame.type(buffer, offset);
    if (type == Frame.TYPE_ABORT) {
      return null;
    }
    final long frameStep = Frame.step(buffer, offset);
    final int chunk = Frame.chunkIndex(buffer, offset);
    if (type == Frame.TYPE_STATISTICS_RESULT) {
      if (open.statisticsRound < 0 || chunk != open.statisticsRound || frameStep != open.step) {
        return "the sum of statistics round " + chunk + " of step " + frameStep + ", not awaited";
      }
      if (open.statisticsReceived) {
        return "a second sum of statistics round " + chunk;
      }
      return Frame.payloadLength(buffer, offset) == open.statisticsBytes
          ? null
          : "statistics of " + Frame.payloadLength(buffer, offset) + " bytes";
    }
    if (type != Frame.TYPE_RESULT) {
      return "a frame of type " + type;
    }
    if (!open.open || frameStep != open.step) {
      return "an answer to step " + frameStep + (open.open ? "" : ", no step open");
    }
    if (chunk < 0 || chunk >= resultReceived.length) {
      return "chunk " + chunk + " of " + resultReceived.length;
    }
    if (resultReceived[chunk]) {
      return "a second answer for chunk " + chunk;
    }
    if (Frame.encoding(buffer, offset) == ChunkCodec.SHARED) {
      return shared == null
          ? "an answer in shared memory, which this worker does not share"
          : Frame.payloadLength(buffer, offset) == 0 ? null : "a payload beside shared memory";
    }
    return ChunkCodec.frameProblem(buffer, offset, layout.lengthBytes(chunk) / Float.BYTES);
  }
}
