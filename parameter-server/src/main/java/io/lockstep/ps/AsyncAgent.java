package io.lockstep.ps;

import io.aeron.Image;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.FragmentHandler;
import io.aeron.logbuffer.FrameDescriptor;
import io.aeron.logbuffer.Header;
import io.lockstep.conf.SyncMode;
import io.lockstep.protocol.ChunkCodec;
import io.lockstep.protocol.ChunkLayout;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FramePublisher;
import io.lockstep.protocol.FrameTag;
import io.lockstep.protocol.ServerAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.agrona.BufferUtil;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.NanoClock;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The duty cycle of an asynchronous shard ({@code async}, Downpour-style, and {@code stale-sync}).
 * The shard holds {@code D}, the sum of every update the workers pushed since the stage began; the
 * workers hold the stage's starting parameters {@code p0} and train from {@code p0 + D}. Each
 * worker's update chunk is added to {@code D} the moment it arrives, in arrival order; when a
 * worker's whole update of step {@code t} is in, the shard answers that worker alone, on its own
 * stream, with the current {@code D}:
 *
 * <ul>
 *   <li>{@code async}: at once;
 *   <li>{@code stale-sync} with bound {@code s}: once every worker has pushed step {@code t - s},
 *       so no worker is more than {@code s} steps ahead of the slowest (Ho et al. 2013);
 *   <li>a stage's last step (flagged {@link Frame#FLAG_FINAL}): once every worker has pushed its
 *       last step, so every replica ends the stage on the same parameters. After the last answer
 *       {@code D} starts again from zero, for the next stage.
 * </ul>
 *
 * <p>A worker waiting longer than the step timeout for the others aborts the job with the ranks it
 * waits for. Frames of another job, an unknown rank, a second stream for a rank, the wrong step or
 * chunk, and malformed payloads are rejected and counted, never added.
 */
final class AsyncAgent implements ServerAgent {
  private static final Logger LOG = LoggerFactory.getLogger(AsyncAgent.class);
  private static final int FRAGMENT_LIMIT = 64;

  private final ServerAddress address;
  private final Subscription subscription;
  private final FramePublisher[] replies;
  private final NanoClock clock;
  private final long stepTimeoutNs;
  private final ChunkLayout layout;
  private final int chunkCount;
  private final int workers;
  private final long staleness;
  private final FragmentHandler handler = this::onFragment;

  /** The sum of the stage's updates so far. */
  private final float[] delta;

  /**
   * Per rank: the step it pushes next, how many of its chunks are in (they come newest first), its
   * stream's session.
   */
  private final long[] nextStep;

  private final int[] chunksIn;
  private final int[] sessions;
  private final boolean[] sessionKnown;
  private final WorkerSources sources;
  private final FrameTag tag;

  /** Per rank: the step whose answer is due, -1 when none; the chunk to send next; since when. */
  private final long[] replyStep;

  private final int[] replyChunk;
  private final boolean[] replyFinal;
  private final byte[] replyEncoding;
  private final long[] waitingSinceNs;
  private final float[] chunk;
  private final UnsafeBuffer encoded;
  private final AtomicLong stepsCompleted = new AtomicLong();
  private final AtomicLong rejectedFrames = new AtomicLong();
  private volatile String failure;

  /** Set before {@link #failure}: whether the worker that aborted says a retry would fail too. */
  private volatile boolean failurePermanent;

  /** Ranks whose last update of the stage is in, and ranks that got their last answer. */
  private int finalsIn;

  private int finalsAnswered;

  AsyncAgent(
      ServerAddress address,
      Subscription subscription,
      Publication[] replies,
      NanoClock clock,
      long stepTimeoutNs,
      long firstStep) {
    this.address = address;
    this.subscription = subscription;
    this.clock = clock;
    this.stepTimeoutNs = stepTimeoutNs;
    this.layout = address.layout();
    this.chunkCount = layout.chunkCount();
    this.workers = address.workers();
    this.staleness = address.mode() == SyncMode.ASYNC ? Long.MAX_VALUE / 2 : address.staleness();
    this.replies = new FramePublisher[workers];
    for (int rank = 0; rank < workers; rank++) {
      this.replies[rank] =
          new FramePublisher(
              replies[rank],
              address.key(),
              clock,
              new BackoffIdleStrategy(),
              stepTimeoutNs,
              () -> {},
              "parameter server to worker " + rank);
    }
    this.delta = new float[address.parameterCount()];
    this.nextStep = new long[workers];
    Arrays.fill(nextStep, firstStep);
    this.chunksIn = new int[workers];
    this.sessions = new int[workers];
    this.sessionKnown = new boolean[workers];
    this.sources = new WorkerSources(workers);
    this.tag = new FrameTag(address.key());
    this.replyStep = new long[workers];
    Arrays.fill(replyStep, -1);
    this.replyChunk = new int[workers];
    this.replyFinal = new boolean[workers];
    this.replyEncoding = new byte[workers];
    this.waitingSinceNs = new long[workers];
    final int chunkFloats = Math.min(address.parameterCount(), address.chunkBytes() / Float.BYTES);
    this.chunk = new float[chunkFloats];
    this.encoded =
        new UnsafeBuffer(BufferUtil.allocateDirectAligned(ChunkCodec.maxLength(chunkFloats), 64));
    this.stepsCompleted.set(firstStep);
  }

  @Override
  public void onClose() {
    CloseHelper.quietCloseAll(subscription);
    for (FramePublisher reply : replies) {
      CloseHelper.quietClose(reply.publication());
    }
  }

  @Override
  public String roleName() {
    return "lockstep-ps-async";
  }

  @Override
  public int doWork() {
    if (failure != null) {
      return 0;
    }
    // Subscription.poll reads the image array once: the client's conductor thread replaces it
    // when a stage's streams come and go.
    int work = subscription.poll(handler, FRAGMENT_LIMIT);
    for (int rank = 0; rank < workers && failure == null; rank++) {
      work += answer(rank);
    }
    return work;
  }

  private void onFragment(DirectBuffer buffer, int offset, int length, Header header) {
    if (failure != null) {
      return;
    }
    final String problem = problem(buffer, offset, length, header);
    if (problem != null) {
      final long rejected = rejectedFrames.incrementAndGet();
      LOG.debug("rejected frame #{}: {}", rejected, problem);
      return;
    }
    final int rank = Frame.rank(buffer, offset);
    if (Frame.type(buffer, offset) == Frame.TYPE_ABORT) {
      failurePermanent = (Frame.flags(buffer, offset) & Frame.FLAG_PERMANENT) != 0;
      abort(
          "worker "
              + rank
              + " failed at step "
              + Frame.step(buffer, offset)
              + ": "
              + buffer.getStringWithoutLengthUtf8(
                  offset + Frame.HEADER_LENGTH, Frame.payloadLength(buffer, offset)));
      return;
    }
    sessions[rank] = header.sessionId();
    sessionKnown[rank] = true;
    sources.heard(rank, (Image) header.context());
    final int c = layout.chunkSentAt(chunksIn[rank]);
    final int first = c * layout.chunkFloats();
    final int count = layout.lengthBytes(c) / Float.BYTES;
    final byte encoding = Frame.encoding(buffer, offset);
    ChunkCodec.add(
        encoding,
        buffer,
        offset + Frame.HEADER_LENGTH,
        Frame.payloadLength(buffer, offset),
        delta,
        first,
        count);
    if (++chunksIn[rank] == chunkCount) {
      final long step = nextStep[rank]++;
      chunksIn[rank] = 0;
      replyStep[rank] = step;
      replyChunk[rank] = 0;
      replyFinal[rank] = (Frame.flags(buffer, offset) & Frame.FLAG_FINAL) != 0;
      replyEncoding[rank] =
          encoding == ChunkCodec.F16 || encoding == ChunkCodec.BF16 ? encoding : ChunkCodec.F32;
      waitingSinceNs[rank] = clock.nanoTime();
      if (replyFinal[rank]) {
        finalsIn++;
      }
    }
  }

  private String problem(DirectBuffer buffer, int offset, int length, Header header) {
    if ((header.flags() & FrameDescriptor.UNFRAGMENTED) != FrameDescriptor.UNFRAGMENTED) {
      return "a fragment of a message larger than one frame";
    }
    final String peer = Frame.peerProblem(buffer, offset, length, address.jobId(), workers);
    if (peer != null) {
      return peer;
    }
    final int rank = Frame.rank(buffer, offset);
    if (!tag.verify(buffer, offset, length)) {
      return "a frame for rank " + rank + " with a wrong tag (not signed with this job's key)";
    }
    if (sessionKnown[rank] && sessions[rank] != header.sessionId()) {
      return "a second stream claims rank " + rank;
    }
    final byte type = Frame.type(buffer, offset);
    if (type == Frame.TYPE_ABORT) {
      return null;
    }
    if (type != Frame.TYPE_GRADIENT) {
      return "rank " + rank + " sent a frame of type " + type + " to an asynchronous server";
    }
    if (replyStep[rank] >= 0) {
      return "rank " + rank + " sent an update before its answer for step " + replyStep[rank];
    }
    final long step = Frame.step(buffer, offset);
    if (step != nextStep[rank]) {
      return "rank " + rank + " sent step " + step + ", the server expects " + nextStep[rank];
    }
    if (Frame.parameterCount(buffer, offset) != address.parameterCount()
        || Frame.chunkCount(buffer, offset) != chunkCount) {
      return "rank " + rank + " has another model or chunk size";
    }
    final int c = Frame.chunkIndex(buffer, offset);
    final int expected = layout.chunkSentAt(chunksIn[rank]);
    if (c != expected) {
      return "rank " + rank + " sent chunk " + c + ", the server expects " + expected;
    }
    final String payload =
        ChunkCodec.frameProblem(buffer, offset, layout.lengthBytes(c) / Float.BYTES);
    return payload == null ? null : "chunk " + c + " from rank " + rank + ": " + payload;
  }

  /** Sends rank's due answer once its gate opens; fails the job when it waited too long. */
  private int answer(int rank) {
    final long step = replyStep[rank];
    if (step < 0) {
      return 0;
    }
    if (!gateOpen(rank, step)) {
      if (clock.nanoTime() - waitingSinceNs[rank] - stepTimeoutNs > 0) {
        abort(
            "step "
                + step
                + ": worker "
                + rank
                + " waited "
                + stepTimeoutNs / 1_000_000_000.0
                + " s for workers "
                + sources.describe(lagging(rank, step))
                + (replyFinal[rank]
                    ? " to finish the stage"
                    : " to reach step " + (step - staleness))
                + "; see their executor logs or raise lockstep.ps.step-timeout");
      }
      return 0;
    }
    final int c = replyChunk[rank];
    final int bytes = layout.lengthBytes(c);
    final int first = c * layout.chunkFloats();
    final FramePublisher reply = replies[rank];
    final byte encoding = replyEncoding[rank];
    int length = bytes;
    if (encoding != ChunkCodec.F32) {
      System.arraycopy(delta, first, chunk, 0, bytes / Float.BYTES);
      length =
          encoding == ChunkCodec.F16
              ? ChunkCodec.encodeF16(chunk, bytes / Float.BYTES, encoded, 0)
              : ChunkCodec.encodeBf16(chunk, bytes / Float.BYTES, encoded, 0);
    }
    Frame.encode(
        reply.header(),
        Frame.TYPE_RESULT,
        rank,
        address.jobId(),
        step,
        c,
        chunkCount,
        0,
        length,
        address.parameterCount());
    if (encoding == ChunkCodec.F32) {
      reply.send(delta, first * Float.BYTES, bytes, step);
    } else {
      Frame.encodingAndFlags(reply.header(), encoding, (byte) 0);
      reply.send(encoded, 0, length, step);
    }
    if (++replyChunk[rank] == chunkCount) {
      replyStep[rank] = -1;
      if (replyFinal[rank]) {
        replyFinal[rank] = false;
        if (++finalsAnswered == workers) {
          // Every replica now holds p0 + D: the next stage starts from there with D = 0, and
          // its workers connect with new streams.
          Arrays.fill(delta, 0f);
          Arrays.fill(sessionKnown, false);
          finalsIn = 0;
          finalsAnswered = 0;
        }
      }
      stepsCompleted.lazySet(minimum(nextStep));
    }
    return 1;
  }

  private boolean gateOpen(int rank, long step) {
    if (replyFinal[rank]) {
      return finalsIn == workers;
    }
    return minimum(nextStep) > step - staleness;
  }

  private List<Integer> lagging(int rank, long step) {
    final List<Integer> lagging = new ArrayList<>();
    for (int other = 0; other < workers; other++) {
      final boolean behind =
          replyFinal[rank]
              ? !(replyFinal[other] || nextStep[other] > step && replyStep[other] < 0)
              : nextStep[other] <= step - staleness;
      if (other != rank && behind) {
        lagging.add(other);
      }
    }
    return lagging;
  }

  private static long minimum(long[] values) {
    long least = Long.MAX_VALUE;
    for (long value : values) {
      least = Math.min(least, value);
    }
    return least;
  }

  @Override
  public void abort(String reason) {
    if (failure != null) {
      return;
    }
    failure = reason;
    LOG.error("parameter server: {}", reason);
    final byte[] text = reason.getBytes(StandardCharsets.UTF_8);
    final int length = Math.min(text.length, address.chunkBytes());
    for (FramePublisher reply : replies) {
      Frame.encode(
          reply.header(),
          Frame.TYPE_ABORT,
          -1,
          address.jobId(),
          stepsCompleted.get(),
          0,
          0,
          0,
          length,
          address.parameterCount());
      // Best effort, never blocking: a worker that is gone cannot be told.
      reply.offerOnce(new UnsafeBuffer(text), 0, length);
    }
  }

  @Override
  public long stepsCompleted() {
    return stepsCompleted.get();
  }

  @Override
  public long rejectedFrames() {
    return rejectedFrames.get();
  }

  @Override
  public String failure() {
    return failure;
  }

  @Override
  public boolean failurePermanent() {
    return failurePermanent;
  }
}
