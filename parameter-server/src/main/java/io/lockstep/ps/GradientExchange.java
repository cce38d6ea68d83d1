package io.lockstep.ps;

import io.aeron.Aeron;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.logbuffer.Header;
import io.lockstep.conf.Transport;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Objects;
import java.util.UUID;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.NanoClock;
import org.agrona.concurrent.SystemNanoClock;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * One worker's connection to the parameter server. {@link #exchange} sends the worker's gradient
 * sum for a step and overwrites it, in place, with the sum over all workers.
 *
 * <p>Not thread-safe: one training thread owns it.
 */
public final class GradientExchange implements AutoCloseable {
  /** Per-process settings of a worker's connection; never serialized. */
  public static final class Context {
    private ServerAddress address;
    private int rank = -1;
    private String workerHost;
    private Duration stepTimeout = Duration.ofSeconds(120);
    private Duration connectTimeout = Duration.ofSeconds(60);
    private NanoClock clock = SystemNanoClock.INSTANCE;

    /**
     * The server to reach.
     *
     * @param address the job's address
     * @return this
     */
    public Context address(ServerAddress address) {
      this.address = address;
      return this;
    }

    /**
     * This worker's rank, in {@code [0, workers)}.
     *
     * @param rank the rank
     * @return this
     */
    public Context rank(int rank) {
      this.rank = rank;
      return this;
    }

    /**
     * The address of this worker's host that the server can reach (UDP transport only).
     *
     * @param workerHost an IP address or host name
     * @return this
     */
    public Context workerHost(String workerHost) {
      this.workerHost = workerHost;
      return this;
    }

    /**
     * Longest wait for one step's result.
     *
     * @param stepTimeout a positive duration
     * @return this
     */
    public Context stepTimeout(Duration stepTimeout) {
      this.stepTimeout = stepTimeout;
      return this;
    }

    /**
     * Longest wait for the streams to connect.
     *
     * @param connectTimeout a positive duration
     * @return this
     */
    public Context connectTimeout(Duration connectTimeout) {
      this.connectTimeout = connectTimeout;
      return this;
    }

    /**
     * The clock deadlines are measured on.
     *
     * @param clock a nano clock
     * @return this
     */
    public Context clock(NanoClock clock) {
      this.clock = clock;
      return this;
    }
  }

  private final ServerAddress address;
  private final int rank;
  private final MediaDriver driver;
  private final Aeron aeron;
  private final Publication gradients;
  private final Subscription results;
  private final FramePublisher publisher;
  private final FragmentAssembler assembler = new FragmentAssembler(this::onResult);
  private final IdleStrategy idle = new BackoffIdleStrategy();
  private final NanoClock clock;
  private final long stepTimeoutNs;
  private final ChunkLayout layout;
  private final boolean[] resultReceived;

  private UnsafeBuffer target;
  private long step;
  private int statisticsRound = -1;
  private int statisticsBytes;
  private boolean statisticsReceived;
  private int chunksReceived;
  private int totalSamples;
  private String abortReason;
  private boolean closed;

  private GradientExchange(
      Context context,
      MediaDriver driver,
      Aeron aeron,
      Publication gradients,
      Subscription results) {
    this.address = context.address;
    this.rank = context.rank;
    this.driver = driver;
    this.aeron = aeron;
    this.gradients = gradients;
    this.results = results;
    this.clock = context.clock;
    this.stepTimeoutNs = context.stepTimeout.toNanos();
    this.layout = address.layout();
    this.resultReceived = new boolean[layout.chunkCount()];
    this.publisher =
        new FramePublisher(
            gradients,
            clock,
            new BackoffIdleStrategy(),
            stepTimeoutNs,
            this::pollResults,
            "worker " + rank);
  }

  /**
   * Connects to the server and waits, up to the connect timeout, until both streams are up.
   *
   * @param context the connection's settings
   * @return the connected exchange
   * @throws ParameterServerException when the server cannot be reached in time
   */
  public static GradientExchange connect(Context context) {
    final ServerAddress address = Objects.requireNonNull(context.address, "address");
    if (context.rank < 0 || context.rank >= address.workers()) {
      throw new IllegalArgumentException(
          "rank " + context.rank + " is outside [0, " + address.workers() + ")");
    }
    MediaDriver driver = null;
    Aeron aeron = null;
    try {
      final String directory;
      if (address.transport() == Transport.IPC) {
        directory = address.aeronDirectory();
      } else {
        Objects.requireNonNull(context.workerHost, "workerHost is required for the udp transport");
        driver =
            ParameterServer.launchDriver(
                address.aeronDirectory() + "-worker-" + context.rank + "-" + UUID.randomUUID(),
                address.termLengthBytes());
        directory = driver.aeronDirectoryName();
      }
      aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(directory));
      final Publication gradients =
          aeron.addExclusivePublication(
              address.gradientChannel(), ServerAddress.GRADIENT_STREAM_ID);
      final Subscription results =
          aeron.addSubscription(
              address.resultSubscriptionChannel(context.workerHost),
              ServerAddress.RESULT_STREAM_ID);
      awaitConnected(context, gradients, results);
      return new GradientExchange(context, driver, aeron, gradients, results);
    } catch (RuntimeException e) {
      CloseHelper.quietCloseAll(aeron, driver);
      throw e;
    }
  }

  private static void awaitConnected(Context context, Publication gradients, Subscription results) {
    final long deadlineNs = context.clock.nanoTime() + context.connectTimeout.toNanos();
    final IdleStrategy idle = new BackoffIdleStrategy();
    while (!gradients.isConnected() || !results.isConnected()) {
      if (context.clock.nanoTime() - deadlineNs > 0) {
        throw new ParameterServerException(
            "worker "
                + context.rank
                + ": parameter server at "
                + describe(context.address)
                + " did not connect within "
                + context.connectTimeout.toSeconds()
                + " s; check that the driver is running and reachable, or raise"
                + " lockstep.ps.connect-timeout");
      }
      if (Thread.currentThread().isInterrupted()) {
        throw new ParameterServerException(
            "worker " + context.rank + ": interrupted while connecting");
      }
      idle.idle();
    }
  }

  private static String describe(ServerAddress address) {
    return address.transport() == Transport.IPC
        ? "aeron:ipc " + address.aeronDirectory()
        : address.host() + ":" + address.port();
  }

  /**
   * Sends this worker's gradient sum for {@code step} and replaces it with the sum over all
   * workers.
   *
   * @param step the global step, counted from 0 without gaps
   * @param gradient {@code parameterCount} little-endian floats; overwritten with the result
   * @param sampleCount samples behind this worker's sum (0 for an empty slice, with a zero sum)
   * @return the step's total sample count over all workers
   * @throws ParameterServerException when the server aborts or the result misses its deadline
   */
  public int exchange(long step, UnsafeBuffer gradient, int sampleCount) {
    if (gradient.capacity() != address.parameterCount() * Float.BYTES) {
      throw new IllegalArgumentException(
          "gradient of "
              + gradient.capacity() / Float.BYTES
              + " floats, the server expects "
              + address.parameterCount());
    }
    this.target = gradient;
    this.step = step;
    this.chunksReceived = 0;
    this.totalSamples = -1;
    java.util.Arrays.fill(resultReceived, false);
    final int chunkCount = layout.chunkCount();
    for (int chunk = 0; chunk < chunkCount; chunk++) {
      Frame.encode(
          publisher.header(),
          Frame.TYPE_GRADIENT,
          rank,
          address.jobId(),
          step,
          chunk,
          chunkCount,
          sampleCount,
          layout.lengthBytes(chunk),
          address.parameterCount());
      publisher.send(gradient, layout.offsetBytes(chunk), layout.lengthBytes(chunk), step);
      pollResults();
    }
    awaitServer(
        () -> chunksReceived == chunkCount,
        "result",
        () -> " (" + chunksReceived + "/" + chunkCount + " chunks)");
    return totalSamples;
  }

  /**
   * Sums a small vector over all workers within a step, before its gradient: SyncBatchNorm's
   * per-channel statistics. Every worker must make the same rounds with the same lengths, in the
   * same order; the server adds them in rank order, so the sum is reproducible.
   *
   * @param step the step the gradient exchange that follows will carry
   * @param round the round within the step, counted from 0
   * @param values {@code length} little-endian floats from offset 0; overwritten with the sum
   * @param length the number of floats, at most the parameter count and one chunk
   * @throws ParameterServerException when the server aborts or the sum misses its deadline
   */
  public void reduceStatistics(long step, int round, UnsafeBuffer values, int length) {
    final int bytes = length * Float.BYTES;
    if (length <= 0 || bytes > address.chunkBytes() || length > address.parameterCount()) {
      throw new IllegalArgumentException(
          "statistics of "
              + length
              + " floats; at most "
              + Math.min(address.chunkBytes() / Float.BYTES, address.parameterCount())
              + " fit in one round");
    }
    this.target = values;
    this.step = step;
    this.statisticsRound = round;
    this.statisticsBytes = bytes;
    this.statisticsReceived = false;
    Frame.encode(
        publisher.header(),
        Frame.TYPE_STATISTICS,
        rank,
        address.jobId(),
        step,
        round,
        1,
        0,
        bytes,
        address.parameterCount());
    publisher.send(values, 0, bytes, step);
    try {
      awaitServer(() -> statisticsReceived, "sum of statistics round " + round, () -> "");
    } finally {
      statisticsRound = -1;
      target = null;
    }
  }

  /**
   * Polls the results until {@code done}, within the step timeout.
   *
   * @param done whether what this worker waits for has arrived
   * @param what what it waits for, for the timeout's message
   * @param progress how much of it arrived, for the timeout's message
   */
  private void awaitServer(BooleanSupplier done, String what, Supplier<String> progress) {
    final long deadlineNs = clock.nanoTime() + stepTimeoutNs;
    idle.reset();
    while (!done.getAsBoolean()) {
      if (pollResults() == 0) {
        if (clock.nanoTime() - deadlineNs > 0) {
          throw new ParameterServerException(
              "worker "
                  + rank
                  + ": step "
                  + step
                  + ": no "
                  + what
                  + " from the parameter server after "
                  + stepTimeoutNs / 1_000_000_000.0
                  + " s"
                  + progress.get()
                  + "; another worker may have stalled, see the driver log or raise"
                  + " lockstep.ps.step-timeout");
        }
        if (Thread.currentThread().isInterrupted()) {
          throw new ParameterServerException(
              "worker " + rank + ": step " + step + ": interrupted while waiting for the " + what);
        }
        idle.idle();
      } else {
        idle.reset();
      }
    }
  }

  private int pollResults() {
    final int work = results.poll(assembler, 64);
    if (abortReason != null) {
      throw new ParameterServerException("worker " + rank + ": server aborted: " + abortReason);
    }
    return work;
  }

  private void onResult(DirectBuffer buffer, int offset, int length, Header header) {
    if (Frame.headerProblem(buffer, offset, length) != null
        || Frame.jobId(buffer, offset) != address.jobId()) {
      return;
    }
    final byte type = Frame.type(buffer, offset);
    if (type == Frame.TYPE_ABORT) {
      abortReason =
          buffer.getStringWithoutLengthUtf8(
              offset + Frame.HEADER_LENGTH, Frame.payloadLength(buffer, offset));
      return;
    }
    final int chunk = Frame.chunkIndex(buffer, offset);
    if (type == Frame.TYPE_STATISTICS_RESULT) {
      if (statisticsRound >= 0
          && chunk == statisticsRound
          && Frame.step(buffer, offset) == step
          && Frame.payloadLength(buffer, offset) == statisticsBytes
          && !statisticsReceived) {
        statisticsReceived = true;
        target.putBytes(0, buffer, offset + Frame.HEADER_LENGTH, statisticsBytes);
      }
      return;
    }
    if (type != Frame.TYPE_RESULT
        || statisticsRound >= 0
        || target == null
        || Frame.step(buffer, offset) != step
        || chunk < 0
        || chunk >= resultReceived.length
        || resultReceived[chunk]
        || Frame.payloadLength(buffer, offset) != layout.lengthBytes(chunk)) {
      return;
    }
    resultReceived[chunk] = true;
    chunksReceived++;
    totalSamples = Frame.samples(buffer, offset);
    target.putBytes(
        layout.offsetBytes(chunk), buffer, offset + Frame.HEADER_LENGTH, layout.lengthBytes(chunk));
  }

  /**
   * Tells the server that this worker failed, so it aborts the step for every worker at once
   * instead of waiting for the step timeout. Best effort: a server that is gone is not an error.
   *
   * @param step the step the worker was at
   * @param reason what failed
   */
  public void abort(long step, String reason) {
    final byte[] text = String.valueOf(reason).getBytes(StandardCharsets.UTF_8);
    final int length = Math.min(text.length, address.chunkBytes());
    Frame.encode(
        publisher.header(),
        Frame.TYPE_ABORT,
        rank,
        address.jobId(),
        step,
        0,
        0,
        0,
        length,
        address.parameterCount());
    gradients.offer(publisher.header(), 0, Frame.HEADER_LENGTH, new UnsafeBuffer(text), 0, length);
  }

  /** Closes the streams, the client and any media driver this worker started; idempotent. */
  @Override
  public void close() {
    if (!closed) {
      closed = true;
      CloseHelper.closeAll(gradients, results, aeron, driver);
    }
  }
}
