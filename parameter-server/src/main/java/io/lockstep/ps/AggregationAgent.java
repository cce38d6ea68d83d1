package io.lockstep.ps;

import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.FragmentHandler;
import io.aeron.logbuffer.Header;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.agrona.BufferUtil;
import org.agrona.DirectBuffer;
import org.agrona.UnsafeApi;
import org.agrona.concurrent.Agent;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.NanoClock;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server's duty cycle: receives gradient chunks, keeps each worker's contribution, and once a
 * chunk is complete adds the contributions in rank order and publishes the sum to every worker.
 * Before the gradient, a step may hold rounds of statistics (SyncBatchNorm's per-channel sums),
 * summed the same way one round at a time; they reuse the contribution buffers, which no gradient
 * chunk of the step can reach before the last round's sum has gone out. Single-threaded: all state
 * below is written by the agent thread only; {@link #stepsCompleted} and the failure are published
 * for readers on other threads.
 */
final class AggregationAgent implements Agent, FragmentHandler {
  private static final Logger LOG = LoggerFactory.getLogger(AggregationAgent.class);
  private static final int FRAGMENT_LIMIT = 64;
  private static final long FLOAT_ARRAY_BASE = UnsafeApi.arrayBaseOffset(float[].class);

  static {
    if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
      throw new IllegalStateException("the parameter server needs a little-endian machine");
    }
  }

  private final ServerAddress address;
  private final Subscription subscription;
  private final FramePublisher results;
  private final FragmentAssembler assembler = new FragmentAssembler(this);
  private final NanoClock clock;
  private final long stepTimeoutNs;
  private final ChunkLayout layout;
  private final int chunkCount;

  /** Each worker's contribution, on the heap so the sum is a loop the JIT vectorizes. */
  private final float[][] contributions;

  private final float[] sum;
  private final UnsafeBuffer sumBuffer;
  private final boolean[] received;
  private final int[] chunkArrivals;
  private final int[] samples;
  private final AtomicLong stepsCompleted = new AtomicLong();
  private final AtomicLong rejectedFrames = new AtomicLong();
  private volatile String failure;

  private final boolean[] statisticsReceived;

  private long step;
  private int chunksCompleted;
  private int gradientFrames;
  private int statisticsRound;
  private int statisticsArrivals;
  private int statisticsBytes = -1;
  private long stepDeadlineNs = Long.MAX_VALUE;

  AggregationAgent(
      ServerAddress address,
      Subscription subscription,
      Publication publication,
      NanoClock clock,
      long stepTimeoutNs,
      long firstStep) {
    this.address = address;
    this.step = firstStep;
    this.stepsCompleted.set(firstStep);
    this.subscription = subscription;
    this.clock = clock;
    this.stepTimeoutNs = stepTimeoutNs;
    this.results =
        new FramePublisher(
            publication,
            clock,
            new BackoffIdleStrategy(),
            stepTimeoutNs,
            () -> {},
            "parameter server");
    this.layout = address.layout();
    this.chunkCount = layout.chunkCount();
    final int vectorBytes = address.parameterCount() * Float.BYTES;
    this.contributions = new float[address.workers()][address.parameterCount()];
    this.sum = new float[address.parameterCount()];
    this.sumBuffer = new UnsafeBuffer(allocate(vectorBytes));
    this.received = new boolean[address.workers() * chunkCount];
    this.chunkArrivals = new int[chunkCount];
    this.samples = new int[address.workers()];
    Arrays.fill(samples, -1);
    this.statisticsReceived = new boolean[address.workers()];
  }

  private static ByteBuffer allocate(int bytes) {
    return BufferUtil.allocateDirectAligned(bytes, 64);
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
    final int work = subscription.poll(assembler, FRAGMENT_LIMIT);
    if (stepDeadlineNs != Long.MAX_VALUE && clock.nanoTime() - stepDeadlineNs > 0) {
      failStep();
    }
    return work;
  }

  @Override
  public void onFragment(DirectBuffer buffer, int offset, int length, Header header) {
    final String problem = problem(buffer, offset, length);
    if (problem != null) {
      final long rejected = rejectedFrames.incrementAndGet();
      LOG.debug("rejected frame #{} at step {}: {}", rejected, step, problem);
      return;
    }
    final int rank = Frame.rank(buffer, offset);
    if (Frame.type(buffer, offset) == Frame.TYPE_ABORT) {
      abort(
          "worker "
              + rank
              + " failed at step "
              + Frame.step(buffer, offset)
              + ": "
              + text(buffer, offset));
      return;
    }
    if (stepDeadlineNs == Long.MAX_VALUE) {
      stepDeadlineNs = clock.nanoTime() + stepTimeoutNs;
    }
    if (Frame.type(buffer, offset) == Frame.TYPE_STATISTICS) {
      onStatistics(rank, buffer, offset);
      return;
    }
    final int chunk = Frame.chunkIndex(buffer, offset);
    gradientFrames++;
    samples[rank] = Frame.samples(buffer, offset);
    received[rank * chunkCount + chunk] = true;
    copy(
        buffer,
        offset + Frame.HEADER_LENGTH,
        contributions[rank],
        layout.offsetBytes(chunk),
        layout.lengthBytes(chunk));
    if (++chunkArrivals[chunk] == address.workers()) {
      completeChunk(chunk);
    }
  }

  private static String text(DirectBuffer buffer, int offset) {
    return buffer.getStringWithoutLengthUtf8(
        offset + Frame.HEADER_LENGTH, Frame.payloadLength(buffer, offset));
  }

  private String problem(DirectBuffer buffer, int offset, int length) {
    final String header = Frame.headerProblem(buffer, offset, length);
    if (header != null) {
      return header;
    }
    if (Frame.jobId(buffer, offset) != address.jobId()) {
      return "frame of job " + Frame.jobId(buffer, offset);
    }
    final int rank = Frame.rank(buffer, offset);
    if (rank < 0 || rank >= address.workers()) {
      return "unknown rank " + rank;
    }
    final byte type = Frame.type(buffer, offset);
    if (type == Frame.TYPE_ABORT) {
      return null;
    }
    if (type != Frame.TYPE_GRADIENT && type != Frame.TYPE_STATISTICS) {
      return "not a gradient or statistics frame";
    }
    final long frameStep = Frame.step(buffer, offset);
    if (frameStep != step) {
      return "rank " + rank + " sent step " + frameStep + " while the server is at step " + step;
    }
    if (Frame.parameterCount(buffer, offset) != address.parameterCount()) {
      return "rank " + rank + " has a model of " + Frame.parameterCount(buffer, offset) + " floats";
    }
    if (type == Frame.TYPE_STATISTICS) {
      return statisticsProblem(rank, buffer, offset);
    }
    if (statisticsArrivals > 0) {
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
    if (chunk < 0 || chunk >= chunkCount) {
      return "chunk " + chunk + " out of range";
    }
    if (Frame.payloadLength(buffer, offset) != layout.lengthBytes(chunk)) {
      return "chunk " + chunk + " has the wrong length";
    }
    if (received[rank * chunkCount + chunk]) {
      return "duplicate chunk " + chunk + " from rank " + rank;
    }
    final int frameSamples = Frame.samples(buffer, offset);
    if (frameSamples < 0 || (samples[rank] >= 0 && samples[rank] != frameSamples)) {
      return "rank " + rank + " changed its sample count within step " + step;
    }
    return null;
  }

  private String statisticsProblem(int rank, DirectBuffer buffer, int offset) {
    if (gradientFrames > 0) {
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
    if (bytes <= 0 || bytes % Float.BYTES != 0 || bytes > sumBuffer.capacity()) {
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
    if (statisticsReceived[rank]) {
      return "duplicate statistics round " + round + " from rank " + rank;
    }
    return null;
  }

  private void onStatistics(int rank, DirectBuffer buffer, int offset) {
    statisticsBytes = Frame.payloadLength(buffer, offset);
    statisticsReceived[rank] = true;
    copy(buffer, offset + Frame.HEADER_LENGTH, contributions[rank], 0, statisticsBytes);
    if (++statisticsArrivals < contributions.length) {
      return;
    }
    sumContributions(0, statisticsBytes);
    Frame.encode(
        results.header(),
        Frame.TYPE_STATISTICS_RESULT,
        -1,
        address.jobId(),
        step,
        statisticsRound,
        1,
        0,
        statisticsBytes,
        address.parameterCount());
    results.send(sumBuffer, 0, statisticsBytes, step);
    statisticsRound++;
    statisticsArrivals = 0;
    statisticsBytes = -1;
    Arrays.fill(statisticsReceived, false);
    stepDeadlineNs = Long.MAX_VALUE;
  }

  /**
   * Adds the contributions' bytes {@code [first, end)} in rank order, one rank at a time over the
   * range (the same additions in the same order as element by element), into {@link #sumBuffer}.
   */
  private void sumContributions(int first, int end) {
    final int from = first / Float.BYTES;
    final int to = end / Float.BYTES;
    System.arraycopy(contributions[0], from, sum, from, to - from);
    for (int rank = 1; rank < contributions.length; rank++) {
      final float[] contribution = contributions[rank];
      for (int i = from; i < to; i++) {
        sum[i] += contribution[i];
      }
    }
    UnsafeApi.copyMemory(
        sum,
        FLOAT_ARRAY_BASE + first,
        sumBuffer.byteArray(),
        sumBuffer.addressOffset() + first,
        end - first);
  }

  /** Copies little-endian floats from a frame into a float array (this JVM is little-endian). */
  private static void copy(DirectBuffer from, int fromByte, float[] to, int toByte, int bytes) {
    UnsafeApi.copyMemory(
        from.byteArray(), from.addressOffset() + fromByte, to, FLOAT_ARRAY_BASE + toByte, bytes);
  }

  private void completeChunk(int chunk) {
    int totalSamples = 0;
    for (int s : samples) {
      totalSamples += s;
    }
    final int first = layout.offsetBytes(chunk);
    final int end = first + layout.lengthBytes(chunk);
    sumContributions(first, end);
    Frame.encode(
        results.header(),
        Frame.TYPE_RESULT,
        -1,
        address.jobId(),
        step,
        chunk,
        chunkCount,
        totalSamples,
        end - first,
        address.parameterCount());
    results.send(sumBuffer, first, end - first, step);
    if (++chunksCompleted == chunkCount) {
      LOG.debug("step {} complete: {} samples", step, totalSamples);
      step++;
      chunksCompleted = 0;
      gradientFrames = 0;
      statisticsRound = 0;
      stepDeadlineNs = Long.MAX_VALUE;
      Arrays.fill(received, false);
      Arrays.fill(chunkArrivals, 0);
      Arrays.fill(samples, -1);
      stepsCompleted.lazySet(step);
    }
  }

  private void failStep() {
    if (statisticsArrivals > 0) {
      final List<Integer> missing = new ArrayList<>();
      for (int rank = 0; rank < contributions.length; rank++) {
        if (!statisticsReceived[rank]) {
          missing.add(rank);
        }
      }
      abort(
          "step "
              + step
              + ": no statistics (SyncBatchNorm round "
              + statisticsRound
              + ") from workers "
              + missing
              + " after "
              + stepTimeoutNs / 1_000_000_000.0
              + " s; see their executor logs or raise lockstep.ps.step-timeout");
      return;
    }
    final List<Integer> missing = new ArrayList<>();
    for (int rank = 0; rank < contributions.length; rank++) {
      for (int chunk = 0; chunk < chunkCount; chunk++) {
        if (!received[rank * chunkCount + chunk]) {
          missing.add(rank);
          break;
        }
      }
    }
    abort(
        "step "
            + step
            + ": no complete gradient from workers "
            + missing
            + " after "
            + stepTimeoutNs / 1_000_000_000.0
            + " s; see their executor logs or raise lockstep.ps.step-timeout");
  }

  /** Records the failure and tells every worker; later frames are ignored. */
  void abort(String reason) {
    if (failure != null) {
      return;
    }
    failure = reason;
    LOG.error("parameter server: {}", reason);
    final byte[] text = reason.getBytes(StandardCharsets.UTF_8);
    Frame.encode(
        results.header(),
        Frame.TYPE_ABORT,
        -1,
        address.jobId(),
        step,
        0,
        0,
        0,
        text.length,
        address.parameterCount());
    try {
      results.send(new UnsafeBuffer(text), 0, text.length, step);
    } catch (ParameterServerException e) {
      LOG.warn("could not tell the workers that step {} failed: {}", step, e.getMessage());
    }
  }

  long stepsCompleted() {
    return stepsCompleted.get();
  }

  long rejectedFrames() {
    return rejectedFrames.get();
  }

  String failure() {
    return failure;
  }
}
