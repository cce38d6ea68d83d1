package io.lockstep.ps;

import io.aeron.Image;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.ControlledFragmentHandler;
import io.aeron.logbuffer.FrameDescriptor;
import io.aeron.logbuffer.Header;
import io.lockstep.conf.SyncMode;
import io.lockstep.protocol.ChunkCodec;
import io.lockstep.protocol.ChunkLayout;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FramePublisher;
import io.lockstep.protocol.FrameTag;
import io.lockstep.protocol.ParameterServerException;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ShardSpan;
import io.lockstep.protocol.SharedGradients;
import io.lockstep.protocol.TraceClock;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.agrona.BufferUtil;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.UnsafeApi;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.NanoClock;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's duty cycle. Every worker's frames come in order on its own Aeron image; the agent
 * looks at the frame at the head of each image without consuming it, and holds it there, in the
 * term, while it waits for the other workers' frame of the same kind (chunk {@code c} of the step's
 * gradient, or statistics round {@code r}). Once every worker's head is in, it adds them in rank
 * order chunk by chunk through two cache-sized arrays, writes the sum straight into the result
 * term, and only then consumes the heads. A contribution is thus never copied into a server-side
 * buffer: the server reads each worker's bytes once and writes the sum once, and its memory does
 * not grow with the model. A worker that runs ahead is held back by Aeron's flow control, not by
 * buffering.
 *
 * <p>Before the gradient, a step may hold rounds of statistics (SyncBatchNorm's per-channel sums),
 * summed the same way one round at a time.
 *
 * <p>Single-threaded: all state below is written by the agent thread only; {@link #stepsCompleted}
 * and the failure are published for readers on other threads.
 */
final class AggregationAgent implements ServerAgent {
  private static final Logger LOG = LoggerFactory.getLogger(AggregationAgent.class);
  private static final int FRAGMENT_LIMIT = 64;

  /** Spans a shard keeps between drains: a stage of more steps loses its later steps' spans. */
  private static final int SPANS_KEPT = 1 << 16;

  private static final long FLOAT_ARRAY_BASE = UnsafeApi.arrayBaseOffset(float[].class);

  static {
    if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
      throw new IllegalStateException("the parameter server needs a little-endian machine");
    }
  }

  private final ServerAddress address;

  /** The job's gradients where workers write their chunks ({@link ChunkCodec#SHARED}), or null. */
  private final SharedGradients shared;

  /** Where this shard's range begins in the whole vector, in bytes. */
  private final int firstByte;

  private final Subscription subscription;
  private final FramePublisher results;
  private final FrameTag tag;
  private final NanoClock clock;
  private final long stepTimeoutNs;
  private final ChunkLayout layout;
  private final int chunkCount;
  private final int workers;
  private final Peek peek = new Peek();
  private final Consumer<Image> takeEveryHead = this::takeHeadsCounted;

  /** Fragments {@link #takeEveryHead} looked at in this duty cycle. */
  private int headsWork;

  /** Local SGD: the workers exchange at some steps only, so a later step may begin any time. */
  private final boolean skipsSteps;

  /** Per rank: the image and term its held head frame lies in, or null when none is held. */
  private final Image[] headImages;

  private final WorkerSources sources;

  private final DirectBuffer[] headBuffers;
  private final int[] headOffsets;

  /** Per rank: the image position just past its held head, to consume it. */
  private final long[] headEnds;

  /** Per rank: its held head's encoding ({@link ChunkCodec}) and payload length. */
  private final byte[] headEncodings;

  private final int[] headLengths;

  /** The sum of a chunk, encoded as the workers' chunks were when they were not float32. */
  private final UnsafeBuffer encoded;

  /** The bytes {@link #encodeSum} wrote into {@link #encoded}. */
  private int encodedLength;

  /** Per rank: the sample count its gradient frames of this step carry, -1 before the first. */
  private final int[] samples;

  /**
   * The sum of one chunk, and one worker's chunk copied out of the term: heap arrays the JIT
   * vectorizes.
   */
  private final float[] sum;

  private final float[] scratch;
  private final AtomicLong stepsCompleted = new AtomicLong();
  private final AtomicLong rejectedFrames = new AtomicLong();

  /**
   * The steps' spans until the driver drains them after each stage; bounded, so a shard process
   * that serves job after job and is never drained holds a fixed amount.
   */
  private final ArrayBlockingQueue<ShardSpan> spans = new ArrayBlockingQueue<>(SPANS_KEPT);

  private volatile String failure;

  /** Set before {@link #failure}: whether the worker that aborted says a retry would fail too. */
  private volatile boolean failurePermanent;

  private long step;

  /** Chunks of this step's gradient summed so far; the next is {@link #currentChunk}. */
  private int chunksSummed;

  private int statisticsRound;
  private int heldHeads;

  /** The type of the held heads ({@link Frame#TYPE_GRADIENT} or statistics), 0 when none. */
  private byte heldType;

  private int statisticsBytes = -1;
  private long stepDeadlineNs = Long.MAX_VALUE;

  /** The open step's first frame and first fully gathered chunk, on the wall clock; 0 before. */
  private long stepStartMicros;

  private long stepGatheredMicros;

  AggregationAgent(
      ServerAddress address,
      Subscription subscription,
      Publication publication,
      NanoClock clock,
      long stepTimeoutNs,
      long firstStep,
      SharedGradients shared,
      int firstByte) {
    this.address = address;
    this.shared = shared;
    this.firstByte = firstByte;
    this.step = firstStep;
    this.stepsCompleted.set(firstStep);
    this.subscription = subscription;
    this.clock = clock;
    this.stepTimeoutNs = stepTimeoutNs;
    this.results =
        new FramePublisher(
            publication,
            address.key(),
            clock,
            new BackoffIdleStrategy(),
            stepTimeoutNs,
            () -> {},
            "parameter server");
    this.tag = new FrameTag(address.key());
    this.skipsSteps = address.mode() == SyncMode.LOCAL_SGD;
    this.layout = address.layout();
    this.chunkCount = layout.chunkCount();
    this.workers = address.workers();
    this.headImages = new Image[workers];
    this.sources = new WorkerSources(workers);
    this.headBuffers = new DirectBuffer[workers];
    this.headOffsets = new int[workers];
    this.headEnds = new long[workers];
    this.headEncodings = new byte[workers];
    this.headLengths = new int[workers];
    this.samples = new int[workers];
    Arrays.fill(samples, -1);
    final int chunkFloats = Math.min(address.parameterCount(), address.chunkBytes() / Float.BYTES);
    this.sum = new float[chunkFloats];
    this.scratch = new float[chunkFloats];
    this.encoded =
        new UnsafeBuffer(BufferUtil.allocateDirectAligned(ChunkCodec.maxLength(chunkFloats), 64));
  }

  /** Remembers the frame at an image's head and leaves it there. */
  private static final class Peek implements ControlledFragmentHandler {
    DirectBuffer buffer;
    int offset;
    int length;
    long end;
    boolean whole;

    @Override
    public Action onFragment(DirectBuffer buffer, int offset, int length, Header header) {
      this.buffer = buffer;
      this.offset = offset;
      this.length = length;
      this.end = header.position();
      this.whole = (header.flags() & FrameDescriptor.UNFRAGMENTED) == FrameDescriptor.UNFRAGMENTED;
      return Action.ABORT;
    }
  }

  /** Closes the shard's streams when its runner stops: a shard process serves job after job. */
  @Override
  public void onClose() {
    CloseHelper.quietCloseAll(subscription, results.publication());
  }

  @Override
  public String roleName() {
    return "lockstep-ps";
  }

  @Override
  public int doWork() {
    if (failure != null) {
      return 0;
    }
    headsWork = 0;
    // forEachImage reads the image array once; imageCount() then imageAtIndex(i) read it twice,
    // and the client's conductor thread replaces it when a stage's streams come and go.
    subscription.forEachImage(takeEveryHead);
    int work = headsWork;
    if (heldHeads == workers && failure == null) {
      completeHeads();
      work++;
    }
    if (stepDeadlineNs != Long.MAX_VALUE && clock.nanoTime() - stepDeadlineNs > 0) {
      failStep();
    }
    return work;
  }

  private void takeHeadsCounted(Image image) {
    if (failure == null) {
      headsWork += takeHeads(image);
    }
  }

  /**
   * Looks at an image's head: rejects and consumes frames that do not belong, holds one that does.
   */
  private int takeHeads(Image image) {
    for (int fragments = 0; fragments < FRAGMENT_LIMIT; fragments++) {
      peek.buffer = null;
      image.controlledPoll(peek, 1);
      if (peek.buffer == null) {
        return fragments;
      }
      final DirectBuffer buffer = peek.buffer;
      final int offset = peek.offset;
      final String problem = problem(image, buffer, offset, peek.length);
      if (problem == HELD) {
        return fragments;
      }
      if (problem != null) {
        final long rejected = rejectedFrames.incrementAndGet();
        LOG.debug("rejected frame #{} at step {}: {}", rejected, step, problem);
        image.position(peek.end);
        continue;
      }
      final int rank = Frame.rank(buffer, offset);
      final byte type = Frame.type(buffer, offset);
      if (type == Frame.TYPE_ABORT) {
        final String reason = text(buffer, offset);
        failurePermanent = (Frame.flags(buffer, offset) & Frame.FLAG_PERMANENT) != 0;
        image.position(peek.end);
        abort("worker " + rank + " failed at step " + Frame.step(buffer, offset) + ": " + reason);
        return fragments + 1;
      }
      if (stepDeadlineNs == Long.MAX_VALUE) {
        stepDeadlineNs = clock.nanoTime() + stepTimeoutNs;
      }
      if (stepStartMicros == 0) {
        stepStartMicros = TraceClock.nowMicros();
      }
      // Local SGD averages at some steps only: the first frame of a later step moves the server on.
      step = Frame.step(buffer, offset);
      headImages[rank] = image;
      sources.heard(rank, image);
      headBuffers[rank] = buffer;
      headOffsets[rank] = offset;
      headEnds[rank] = peek.end;
      headEncodings[rank] = Frame.encoding(buffer, offset);
      headLengths[rank] = Frame.payloadLength(buffer, offset);
      heldHeads++;
      heldType = type;
      if (type == Frame.TYPE_STATISTICS) {
        statisticsBytes = Frame.payloadLength(buffer, offset);
      } else {
        samples[rank] = Frame.samples(buffer, offset);
      }
      return fragments + 1;
    }
    return FRAGMENT_LIMIT;
  }

  private static String text(DirectBuffer buffer, int offset) {
    return buffer.getStringWithoutLengthUtf8(
        offset + Frame.HEADER_LENGTH, Frame.payloadLength(buffer, offset));
  }

  /** Not a problem: the frame is the head this agent already holds for its rank. */
  private static final String HELD = "held";

  private String problem(Image image, DirectBuffer buffer, int offset, int length) {
    if (!peek.whole) {
      return "a fragment of a message larger than one frame";
    }
    final String peer = Frame.peerProblem(buffer, offset, length, address.jobId(), workers);
    if (peer != null) {
      return peer;
    }
    final int rank = Frame.rank(buffer, offset);
    final byte type = Frame.type(buffer, offset);
    if (type != Frame.TYPE_ABORT && type != Frame.TYPE_GRADIENT && type != Frame.TYPE_STATISTICS) {
      return "not a gradient or statistics frame";
    }
    if (type != Frame.TYPE_ABORT && headBuffers[rank] != null) {
      return headImages[rank] == image ? HELD : "a second stream claims rank " + rank;
    }
    // after the held check: a held head is peeked again on every poll, and verified once
    if (!tag.verify(buffer, offset, length)) {
      return "a frame for rank " + rank + " with a wrong tag (not signed with this job's key)";
    }
    if (type == Frame.TYPE_ABORT) {
      return null;
    }
    final long frameStep = Frame.step(buffer, offset);
    final boolean laterStep = frameStep > step && skipsSteps && heldHeads == 0 && chunksSummed == 0;
    if (frameStep != step && !laterStep) {
      return "rank " + rank + " sent step " + frameStep + " while the server is at step " + step;
    }
    if (Frame.parameterCount(buffer, offset) != address.parameterCount()) {
      return "rank " + rank + " has a model of " + Frame.parameterCount(buffer, offset) + " floats";
    }
    if (type == Frame.TYPE_STATISTICS) {
      return statisticsProblem(rank, buffer, offset);
    }
    if (heldType == Frame.TYPE_STATISTICS) {
      return "rank "
          + rank
          + " sent its gradient while statistics round "
          + statisticsRound
          + " is open";
    }
    if (Frame.chunkCount(buffer, offset) != chunkCount) {
      return "rank "
          + rank
          + " cut its gradient into "
          + Frame.chunkCount(buffer, offset)
          + " chunks";
    }
    final int chunk = Frame.chunkIndex(buffer, offset);
    if (chunk != currentChunk()) {
      return chunk > currentChunk() && chunk < chunkCount
          ? "duplicate chunk " + chunk + " from rank " + rank
          : "rank "
              + rank
              + " sent chunk "
              + chunk
              + " while the server sums chunk "
              + currentChunk();
    }
    final String payload =
        Frame.encoding(buffer, offset) == ChunkCodec.SHARED
            ? sharedProblem(buffer, offset)
            : ChunkCodec.frameProblem(buffer, offset, layout.lengthBytes(chunk) / Float.BYTES);
    if (payload != null) {
      return "chunk " + chunk + " from rank " + rank + ": " + payload;
    }
    final int frameSamples = Frame.samples(buffer, offset);
    if (frameSamples < 0 || (samples[rank] >= 0 && samples[rank] != frameSamples)) {
      return "rank " + rank + " changed its sample count within step " + step;
    }
    return null;
  }

  /** Null when a chunk in shared memory may be: this server shares it, and the frame is empty. */
  private String sharedProblem(DirectBuffer buffer, int offset) {
    if (shared == null) {
      return "a chunk in shared memory, which this server does not share";
    }
    return Frame.payloadLength(buffer, offset) == 0 ? null : "a payload beside shared memory";
  }

  private String statisticsProblem(int rank, DirectBuffer buffer, int offset) {
    if (chunksSummed > 0 || heldType == Frame.TYPE_GRADIENT) {
      return "rank " + rank + " sent statistics after the gradient of step " + step;
    }
    final int round = Frame.chunkIndex(buffer, offset);
    if (round != statisticsRound) {
      return "rank "
          + rank
          + " sent statistics round "
          + round
          + " while the server is at round "
          + statisticsRound;
    }
    final int bytes = Frame.payloadLength(buffer, offset);
    if (Frame.encoding(buffer, offset) != ChunkCodec.F32) {
      return "rank " + rank + " sent statistics that are not float32";
    }
    if (bytes <= 0 || bytes % Float.BYTES != 0 || bytes > sum.length * Float.BYTES) {
      return "rank " + rank + " sent statistics of " + bytes + " bytes";
    }
    if (statisticsBytes >= 0 && bytes != statisticsBytes) {
      return "rank "
          + rank
          + " sent "
          + bytes / Float.BYTES
          + " statistics in round "
          + round
          + ", others sent "
          + statisticsBytes / Float.BYTES;
    }
    return null;
  }

  /** Every worker's head is in: sums them in rank order, publishes the sum, consumes the heads. */
  private void completeHeads() {
    for (int rank = 0; rank < workers; rank++) {
      if (headImages[rank].isClosed()) {
        // The worker's stream went away while its frame waited; its log may be unmapped soon.
        release(rank);
        return;
      }
    }
    final boolean statistics = heldType == Frame.TYPE_STATISTICS;
    if (!statistics && chunksSummed == 0) {
      stepGatheredMicros = TraceClock.nowMicros();
    }
    final int bytes = statistics ? statisticsBytes : layout.lengthBytes(currentChunk());
    int totalSamples = 0;
    if (!statistics) {
      for (int s : samples) {
        totalSamples += s;
      }
    }
    sumHeads(bytes);
    final byte encoding = statistics ? ChunkCodec.F32 : encodeSum(bytes / Float.BYTES);
    final int length = encoding == ChunkCodec.F32 ? bytes : encodedLength;
    Frame.encode(
        results.header(),
        statistics ? Frame.TYPE_STATISTICS_RESULT : Frame.TYPE_RESULT,
        -1,
        address.jobId(),
        step,
        statistics ? statisticsRound : currentChunk(),
        statistics ? 1 : chunkCount,
        totalSamples,
        length,
        address.parameterCount());
    if (encoding == ChunkCodec.F32) {
      results.send(sum, 0, bytes, step);
    } else {
      Frame.encodingAndFlags(results.header(), encoding, (byte) 0);
      results.send(encoded, 0, length, step);
    }
    consumeHeads();
    if (statistics) {
      statisticsRound++;
      stepDeadlineNs = Long.MAX_VALUE;
    } else if (++chunksSummed == chunkCount) {
      LOG.debug("step {} complete: {} samples", step, totalSamples);
      spans.offer(
          new ShardSpan(
              address.shard(), step, stepStartMicros, stepGatheredMicros, TraceClock.nowMicros()));
      stepStartMicros = 0;
      step++;
      chunksSummed = 0;
      statisticsRound = 0;
      stepDeadlineNs = Long.MAX_VALUE;
      Arrays.fill(samples, -1);
      stepsCompleted.lazySet(step);
    }
  }

  /** The chunk of the step's gradient the server sums next: they come newest first. */
  private int currentChunk() {
    return layout.chunkSentAt(chunksSummed);
  }

  /**
   * Adds the heads' {@code bytes / 4} floats into {@link #sum} in rank order: {@code ((c0 + c1) +
   * c2) + ...}, the same additions as element by element. Float32 heads are copied out of the term
   * and added in a loop the JIT vectorizes; encoded ones are decoded as they are added.
   */
  private void sumHeads(int bytes) {
    final int count = bytes / Float.BYTES;
    for (int rank = 0; rank < workers; rank++) {
      final byte encoding =
          heldType == Frame.TYPE_STATISTICS ? ChunkCodec.F32 : headEncodings[rank];
      final boolean inShared = encoding == ChunkCodec.SHARED;
      final DirectBuffer buffer = inShared ? shared.slot(rank) : headBuffers[rank];
      final int payload =
          inShared
              ? firstByte + layout.offsetBytes(currentChunk())
              : headOffsets[rank] + Frame.HEADER_LENGTH;
      if (encoding != ChunkCodec.F32 && !inShared) {
        if (rank == 0) {
          Arrays.fill(sum, 0, count, 0f);
        }
        ChunkCodec.add(encoding, buffer, payload, headLengths[rank], sum, 0, count);
      } else if (rank == 0) {
        copy(buffer, payload, sum, bytes);
      } else {
        copy(buffer, payload, scratch, bytes);
        for (int i = 0; i < count; i++) {
          sum[i] += scratch[i];
        }
      }
    }
  }

  /**
   * Chooses how the sum of a chunk goes back: in shared memory when every worker's chunk was there,
   * half precision or bfloat16 when every worker sent it so, sparse when a worker sent a sparse
   * chunk and the sum is shorter that way, float32 otherwise. Writes it into the shared sum or
   * encodes it into {@link #encoded} unless float32.
   */
  private byte encodeSum(int count) {
    final byte first = headEncodings[0];
    boolean same = true;
    boolean sparse = false;
    for (int rank = 0; rank < workers; rank++) {
      same &= headEncodings[rank] == first;
      sparse |= headEncodings[rank] == ChunkCodec.SPARSE;
    }
    if (same && first == ChunkCodec.SHARED) {
      final UnsafeBuffer to = shared.sum();
      UnsafeApi.copyMemory(
          sum,
          FLOAT_ARRAY_BASE,
          null,
          to.addressOffset() + firstByte + layout.offsetBytes(currentChunk()),
          (long) count * Float.BYTES);
      encodedLength = 0;
      return ChunkCodec.SHARED;
    }
    if (same && first == ChunkCodec.F16) {
      encodedLength = ChunkCodec.encodeF16(sum, count, encoded, 0);
      return ChunkCodec.F16;
    }
    if (same && first == ChunkCodec.BF16) {
      encodedLength = ChunkCodec.encodeBf16(sum, count, encoded, 0);
      return ChunkCodec.BF16;
    }
    if (sparse) {
      encodedLength = ChunkCodec.encodeSparse(sum, count, encoded, 0);
      if (encodedLength >= 0) {
        return ChunkCodec.SPARSE;
      }
    }
    return ChunkCodec.F32;
  }

  /** Copies little-endian floats from a frame into a float array (this JVM is little-endian). */
  private static void copy(DirectBuffer from, int fromByte, float[] to, int bytes) {
    UnsafeApi.copyMemory(
        from.byteArray(), from.addressOffset() + fromByte, to, FLOAT_ARRAY_BASE, bytes);
  }

  private void consumeHeads() {
    for (int rank = 0; rank < workers; rank++) {
      final Image image = headImages[rank];
      release(rank);
      if (!image.isClosed()) {
        image.position(headEnds[rank]);
      }
    }
  }

  /** Lets go of a rank's head; with the last one, the kind of the held heads is forgotten too. */
  private void release(int rank) {
    headImages[rank] = null;
    headBuffers[rank] = null;
    heldHeads--;
    if (heldHeads == 0) {
      heldType = 0;
      statisticsBytes = -1;
    }
  }

  private void failStep() {
    final List<Integer> missing = new ArrayList<>();
    for (int rank = 0; rank < workers; rank++) {
      if (headBuffers[rank] == null) {
        missing.add(rank);
      }
    }
    if (heldType == Frame.TYPE_STATISTICS) {
      abort(
          "step "
              + step
              + ": no statistics (SyncBatchNorm round "
              + statisticsRound
              + ") from workers "
              + sources.describe(missing)
              + " after "
              + stepTimeoutNs / 1_000_000_000.0
              + " s; see their executor logs or raise lockstep.ps.step-timeout");
      return;
    }
    abort(
        "step "
            + step
            + ": no complete gradient from workers "
            + sources.describe(missing)
            + " after "
            + stepTimeoutNs / 1_000_000_000.0
            + " s; see their executor logs or raise lockstep.ps.step-timeout");
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
    Frame.encode(
        results.header(),
        Frame.TYPE_ABORT,
        -1,
        address.jobId(),
        step,
        0,
        0,
        0,
        length,
        address.parameterCount());
    try {
      results.send(new UnsafeBuffer(text), 0, length, step);
    } catch (ParameterServerException e) {
      LOG.warn("could not tell the workers that step {} failed: {}", step, e.getMessage());
    }
  }

  @Override
  public long stepsCompleted() {
    return stepsCompleted.get();
  }

  @Override
  public void drainSpans(Collection<ShardSpan> into) {
    spans.drainTo(into);
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
