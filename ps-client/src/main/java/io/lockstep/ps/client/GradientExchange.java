package io.lockstep.ps.client;

import io.aeron.Aeron;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.lockstep.conf.Compression;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.ChunkCodec;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FramePublisher;
import io.lockstep.protocol.MediaDrivers;
import io.lockstep.protocol.ParameterServerException;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.protocol.SharedGradients;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.agrona.CloseHelper;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.NanoClock;
import org.agrona.concurrent.SystemNanoClock;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * One worker's connection to the parameter server, to all its shards at once. {@link #exchange}
 * sends the worker's gradient sum for a step and overwrites it, in place, with the sum over all
 * workers.
 *
 * <p>Its parts, one of each per shard: a {@link ShardProxy} sends the shard this worker's frames, a
 * {@link ShardAdapter} takes the shard's answers into the open step ({@link ExchangeStep}); the
 * {@link StatisticsLane} sums SyncBatchNorm's statistics through shard 0. This class orders them:
 * which chunk goes when, overlap with the backward pass (its pump thread), deadlines, aborts.
 *
 * <p>Not thread-safe: one training thread owns it.
 */
public final class GradientExchange implements AutoCloseable {

  /** Per-process settings of a worker's connection; never serialized. */
  public static final class Context {
    private ServerShards shards;
    private int rank = -1;
    private String workerHost;
    private Duration stepTimeout = Keys.STEP_TIMEOUT.defaultOf();
    private Duration connectTimeout = Keys.CONNECT_TIMEOUT.defaultOf();
    private NanoClock clock = SystemNanoClock.INSTANCE;
    private Compression compression = Keys.PS_COMPRESSION.defaultOf();
    private double topKRatio = Keys.PS_TOP_K_RATIO.defaultOf();
    private double threshold = Keys.PS_THRESHOLD.defaultOf();

    /**
     * How this worker encodes its chunks; the server answers in kind. The sparse encodings keep
     * what they leave out as a residual for the life of this exchange.
     *
     * @param compression the encoding
     * @param topKRatio the fraction of each chunk top-k sends, in (0, 1]
     * @param threshold the per-sample magnitude threshold sends, > 0
     * @return this
     */
    public Context compression(Compression compression, double topKRatio, double threshold) {
      this.compression = Objects.requireNonNull(compression, "compression");
      this.topKRatio = topKRatio;
      this.threshold = threshold;
      return this;
    }

    /**
     * The server to reach.
     *
     * @param address the job's address
     * @return this
     */
    public Context address(ServerAddress address) {
      this.shards = ServerShards.of(address);
      return this;
    }

    /**
     * The sharded server to reach: the worker talks to every shard at once.
     *
     * @param shards the job's shards
     * @return this
     */
    public Context shards(ServerShards shards) {
      this.shards = shards;
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

  private final ServerShards shards;
  private final int rank;
  private final MediaDriver driver;
  private final Aeron aeron;

  /**
   * The job's gradients in memory shared with the server, where this worker writes its chunks and
   * reads the sums ({@link ChunkCodec#SHARED}); null where frames carry them.
   */
  private final SharedGradients shared;

  private final ShardProxy[] proxies;
  private final ShardAdapter[] adapters;
  private final StatisticsLane statistics;
  private final ExchangeStep open;
  private final IdleStrategy idle = new BackoffIdleStrategy();
  private final NanoClock clock;
  private final long stepTimeoutNs;

  private long sendNs;
  private long waitNs;
  private long receiveNs;
  private volatile boolean closed;

  /**
   * Guards the streams and the step's state while an overlapped step is open: the {@link #pump}
   * thread and the training thread ({@link #ready}, {@link #finish}, {@link #close}) take it for
   * every touch of them.
   */
  private final ReentrantLock lock = new ReentrantLock();

  /**
   * Keeps an overlapped step's streams moving between {@link #ready} calls, while the backward pass
   * computes a layer: sends the chunks declared final as the streams' windows open, and takes in
   * the answers as they arrive. Without it bytes moved only at each {@code ready}: the server's
   * answers filled this worker's receive window (Aeron's 128 KiB) within milliseconds, the server's
   * result stream stalled on it, and with it the sums for every worker, until the next layer was
   * done. One daemon thread per exchange, started by the first {@link #begin}; parked while no
   * overlapped step is open.
   */
  private Thread pump;

  /**
   * Whether {@link #pump} works: from {@link #begin} to {@link #finish}; written under the lock.
   */
  private volatile boolean pumping;

  /** The open step's final range begins here, in bytes of the whole vector; under the lock. */
  private long readyFromByte;

  /** What stopped {@link #pump}, for the training thread to throw at its next call. */
  private volatile RuntimeException pumpFailure;

  private GradientExchange(
      Context context,
      MediaDriver driver,
      Aeron aeron,
      Publication[] gradients,
      Subscription[] results,
      SharedGradients shared) {
    this.shards = context.shards;
    this.rank = context.rank;
    this.driver = driver;
    this.aeron = aeron;
    this.shared = shared;
    this.clock = context.clock;
    this.stepTimeoutNs = context.stepTimeout.toNanos();
    this.open = new ExchangeStep(rank);
    this.proxies = new ShardProxy[shards.count()];
    this.adapters = new ShardAdapter[shards.count()];
    for (int s = 0; s < proxies.length; s++) {
      final ServerAddress address = shards.shard(s);
      final int firstByte = shards.first(s) * Float.BYTES;
      final GradientEncoder encoder =
          context.compression == Compression.NONE
              ? null
              : new GradientEncoder(
                  context.compression, context.topKRatio, context.threshold, address.layout());
      final FramePublisher publisher =
          new FramePublisher(
              gradients[s],
              address.key(),
              clock,
              new BackoffIdleStrategy(),
              stepTimeoutNs,
              this::pollResults,
              "worker " + rank + (shards.count() > 1 ? " to shard " + address.shard() : ""));
      proxies[s] = new ShardProxy(open, address, firstByte, publisher, shared, encoder);
      adapters[s] =
          new ShardAdapter(open, address, firstByte, results[s], shared, clock, shards.count() > 1);
    }
    this.statistics = new StatisticsLane(open, proxies[0]);
  }

  /**
   * Connects to the server's shards and waits, up to the connect timeout, until all streams are up.
   *
   * @param context the connection's settings
   * @return the connected exchange
   * @throws ParameterServerException when the server cannot be reached in time
   */
  public static GradientExchange connect(Context context) {
    final ServerShards shards = Objects.requireNonNull(context.shards, "address");
    final ServerAddress address = shards.shard(0);
    if (context.rank < 0 || context.rank >= address.workers()) {
      throw new IllegalArgumentException(
          "rank " + context.rank + " is outside [0, " + address.workers() + ")");
    }
    MediaDriver driver = null;
    Aeron aeron = null;
    SharedGradients shared = null;
    try {
      final String directory;
      if (address.transport() == Transport.IPC) {
        directory = address.aeronDirectory();
      } else {
        Objects.requireNonNull(context.workerHost, "workerHost is required for the udp transport");
        driver =
            MediaDrivers.launch(
                address.aeronDirectory() + "-worker-" + context.rank + "-" + UUID.randomUUID(),
                address.termLengthBytes(),
                true);
        directory = driver.aeronDirectoryName();
      }
      aeron = Aeron.connect(MediaDrivers.clientContext(directory));
      final Publication[] gradients = new Publication[shards.count()];
      final Subscription[] results = new Subscription[shards.count()];
      for (int s = 0; s < shards.count(); s++) {
        final ServerAddress shard = shards.shard(s);
        gradients[s] =
            aeron.addExclusivePublication(shard.gradientChannel(), shard.gradientStreamId());
        results[s] =
            aeron.addSubscription(
                shard.resultSubscriptionChannel(context.workerHost),
                shard.asynchronous() ? shard.replyStreamId(context.rank) : shard.resultStreamId());
      }
      for (int s = 0; s < shards.count(); s++) {
        awaitConnected(context, shards.shard(s), gradients[s], results[s]);
      }
      // the server made the file before its streams were up
      if (SharedGradients.carries(address) && context.compression == Compression.NONE) {
        shared = SharedGradients.open(shards, context.rank);
      }
      return new GradientExchange(context, driver, aeron, gradients, results, shared);
    } catch (RuntimeException e) {
      CloseHelper.quietCloseAll(shared, aeron, driver);
      throw e;
    }
  }

  private static void awaitConnected(
      Context context, ServerAddress address, Publication gradients, Subscription results) {
    final long deadlineNs = context.clock.nanoTime() + context.connectTimeout.toNanos();
    final IdleStrategy idle = new BackoffIdleStrategy();
    while (!gradients.isConnected() || !results.isConnected()) {
      if (context.clock.nanoTime() - deadlineNs > 0) {
        throw new ParameterServerException(
            "worker "
                + context.rank
                + ": parameter server "
                + (context.shards.count() > 1 ? "shard " + address.shard() + " " : "")
                + "at "
                + describe(address)
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
   * workers. Chunks go to the shards in turn, so every shard sums while the others receive.
   *
   * @param step the global step, counted from 0 without gaps
   * @param gradient {@code parameterCount} little-endian floats; overwritten with the result
   * @param sampleCount samples behind this worker's sum (0 for an empty slice, with a zero sum)
   * @return the step's total sample count over all workers
   * @throws ParameterServerException when the server aborts or the result misses its deadline
   */
  public int exchange(long step, UnsafeBuffer gradient, int sampleCount) {
    return exchange(step, gradient, sampleCount, false);
  }

  /**
   * Sends this worker's vector for {@code step} and replaces it with the server's answer: with a
   * synchronous server ({@code sync}, {@code local-sgd}) the sum over all workers, as {@link
   * #exchange(long, UnsafeBuffer, int)}; with an asynchronous one ({@code async}, {@code
   * stale-sync}) the vector is this worker's update and the answer is the sum of every update of
   * the stage so far, sent to this worker alone.
   *
   * @param step the global step
   * @param gradient {@code parameterCount} little-endian floats; overwritten with the answer
   * @param sampleCount samples behind this worker's vector
   * @param lastOfStage the stage's last step: an asynchronous server answers once every worker has
   *     sent it, so all end the stage on the same sum
   * @return the step's total sample count over all workers; 0 from an asynchronous server
   * @throws ParameterServerException when the server aborts or the answer misses its deadline
   */
  public int exchange(long step, UnsafeBuffer gradient, int sampleCount, boolean lastOfStage) {
    open(step, gradient, sampleCount, lastOfStage);
    return finish();
  }

  /**
   * Opens a step whose vector is still being written: {@link #ready} sends each part as it is
   * finished, {@link #finish} the rest, and then waits for the answer. A synchronous step overlaps
   * the backward pass this way: the server sums the last layers' chunks while the worker computes
   * the first layers' gradient.
   *
   * @param step the global step
   * @param gradient {@code parameterCount} little-endian floats; overwritten with the answer, each
   *     chunk as its answer arrives
   * @param sampleCount samples behind this worker's vector
   * @param lastOfStage the stage's last step, as for {@link #exchange(long, UnsafeBuffer, int,
   *     boolean)}
   * @throws IllegalStateException when the previous step was not finished
   */
  public void begin(long step, UnsafeBuffer gradient, int sampleCount, boolean lastOfStage) {
    lock.lock();
    try {
      open(step, gradient, sampleCount, lastOfStage);
      readyFromByte = Long.MAX_VALUE;
      pumpFailure = null;
      pumping = true;
    } finally {
      lock.unlock();
    }
    if (pump == null) {
      pump = new Thread(this::pump, "lockstep-exchange-rank-" + rank);
      pump.setDaemon(true);
      pump.start();
    } else {
      LockSupport.unpark(pump);
    }
  }

  private void open(long step, UnsafeBuffer gradient, int sampleCount, boolean lastOfStage) {
    if (gradient.capacity() != shards.parameterCount() * Float.BYTES) {
      throw new IllegalArgumentException(
          "gradient of "
              + gradient.capacity() / Float.BYTES
              + " floats, the server expects "
              + shards.parameterCount());
    }
    if (open.open) {
      throw new IllegalStateException("step " + open.step + " was begun and not finished");
    }
    open.target = gradient;
    open.step = step;
    open.sampleCount = sampleCount;
    open.flags = lastOfStage ? Frame.FLAG_FINAL : 0;
    open.totalSamples = -1;
    for (int s = 0; s < proxies.length; s++) {
      proxies[s].reset();
      adapters[s].reset();
    }
    open.open = true;
  }

  /**
   * Says that the open step's vector is final from float {@code firstFinal} to its end: sends every
   * chunk that lies wholly within that range and has not gone yet, newest first, as far as the
   * streams take them now, and takes in the answers that have arrived. Never waits for the network
   * (only, briefly, for {@link #pump}'s turn): where a link is slower than the backward pass, a
   * stream's window fills, and its remaining chunks go as the window opens, sent by {@link #pump}
   * while the backward pass goes on, or with {@link #finish}.
   *
   * @param firstFinal the first float of the finished range, in {@code [0, parameterCount]}
   * @return how many of the step's chunks have their answer in the vector already
   * @throws ParameterServerException when the server aborts
   */
  public int ready(int firstFinal) {
    requireOpenStep();
    int answered = 0;
    lock.lock();
    try {
      throwPumpFailure();
      readyFromByte = (long) firstFinal * Float.BYTES;
      sendReady();
      pollResults();
      for (ShardAdapter adapter : adapters) {
        answered += adapter.chunksReceived();
      }
    } finally {
      lock.unlock();
    }
    LockSupport.unpark(pump);
    return answered;
  }

  /**
   * Sends the final chunks not yet sent, newest first, as far as the streams take them now.
   *
   * @return the chunks sent
   */
  private int sendReady() {
    int sent = 0;
    for (int s = proxies.length - 1; s >= 0; s--) {
      final ShardProxy proxy = proxies[s];
      while (proxy.hasUnsent() && proxy.nextUnsentByte() >= readyFromByte && proxy.canSendNow()) {
        proxy.sendNext();
        sent++;
      }
      if (proxy.hasUnsent()) {
        break;
      }
    }
    return sent;
  }

  /** {@link #pump}'s duty cycle: idle, with short naps, while nothing moves. */
  private void pump() {
    final IdleStrategy naps = new BackoffIdleStrategy(0, 0, 100_000, 1_000_000);
    while (!closed) {
      if (!pumping) {
        LockSupport.park(this);
        naps.reset();
        continue;
      }
      int work = 0;
      lock.lock();
      try {
        if (pumping && !closed) {
          work = sendReady() + pollResults();
        }
      } catch (RuntimeException e) {
        pumpFailure = e;
        pumping = false;
      } finally {
        lock.unlock();
      }
      if (work > 0) {
        naps.reset();
      } else {
        naps.idle();
      }
    }
  }

  /** Stops {@link #pump} for the rest of the step; from here the training thread works alone. */
  private void stopPumping() {
    if (pumping) {
      lock.lock();
      try {
        pumping = false;
      } finally {
        lock.unlock();
      }
    }
    throwPumpFailure();
  }

  private void throwPumpFailure() {
    final RuntimeException failure = pumpFailure;
    if (failure != null) {
      pumpFailure = null;
      throw failure;
    }
  }

  /**
   * Sends what {@link #ready} has not sent, the shards in turn so every shard sums while the others
   * receive, and waits for the whole answer.
   *
   * @return the step's total sample count over all workers; 0 from an asynchronous server
   * @throws ParameterServerException when the server aborts or the answer misses its deadline
   */
  public int finish() {
    requireOpenStep();
    final long startNs = clock.nanoTime();
    try {
      stopPumping();
      boolean sent = true;
      while (sent) {
        sent = false;
        for (ShardProxy proxy : proxies) {
          if (proxy.hasUnsent()) {
            proxy.sendNext();
            sent = true;
          }
        }
        pollResults();
      }
      final long sentNs = clock.nanoTime();
      open.awaiting = true;
      open.decodeNs = 0;
      awaitServer(this::allResultsIn, "result", this::resultProgress);
      final long endNs = clock.nanoTime();
      sendNs = sentNs - startNs;
      receiveNs = open.decodeNs;
      waitNs = Math.max(0, endNs - sentNs - open.decodeNs);
      return open.totalSamples;
    } finally {
      open.awaiting = false;
      open.open = false;
    }
  }

  private void requireOpenStep() {
    if (!open.open) {
      throw new IllegalStateException("no step is open; call begin first");
    }
  }

  private boolean allResultsIn() {
    for (ShardAdapter adapter : adapters) {
      if (!adapter.complete()) {
        return false;
      }
    }
    return true;
  }

  private String resultProgress() {
    final StringBuilder progress = new StringBuilder(" (");
    for (int s = 0; s < adapters.length; s++) {
      if (progress.length() > 2) {
        progress.append(", ");
      }
      if (adapters.length > 1) {
        progress.append("shard ").append(proxies[s].address.shard()).append(' ');
      }
      progress.append(adapters[s].chunksReceived()).append('/').append(adapters[s].chunkCount());
    }
    return progress.append(" chunks)").toString();
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
    statistics.send(step, round, values, length);
    try {
      awaitServer(statistics::received, "sum of statistics round " + round, () -> "");
    } finally {
      statistics.close();
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
        final String lost = lostServer();
        if (lost != null) {
          throw new ParameterServerException(
              "worker "
                  + rank
                  + ": step "
                  + open.step
                  + ": "
                  + lost
                  + " while waiting for the "
                  + what
                  + ": the parameter server stopped or crashed; see the driver log");
        }
        if (clock.nanoTime() - deadlineNs > 0) {
          throw new ParameterServerException(
              "worker "
                  + rank
                  + ": step "
                  + open.step
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
              "worker "
                  + rank
                  + ": step "
                  + open.step
                  + ": interrupted while waiting for the "
                  + what);
        }
        idle.idle();
      } else {
        idle.reset();
      }
    }
  }

  /**
   * Whether a server this worker was connected to has gone: its result stream has no publisher left
   * (Aeron notices a vanished UDP publisher after the image liveness timeout, 10 s by default) or
   * the Aeron client has closed it.
   *
   * @return what is gone, or null while every server is there
   */
  private String lostServer() {
    for (ShardAdapter adapter : adapters) {
      if (adapter.serverLost()) {
        return "no parameter server on "
            + adapter.results.channel()
            + " stream "
            + adapter.results.streamId()
            + " any more";
      }
    }
    return null;
  }

  private int pollResults() {
    int work = 0;
    for (ShardAdapter adapter : adapters) {
      work += adapter.poll();
    }
    if (open.abortReason != null) {
      throw new ParameterServerException(
          "worker " + rank + ": server aborted: " + open.abortReason);
    }
    return work;
  }

  /**
   * How the last {@link #finish} spent its time sending what was left of the vector: chunks that
   * {@link #ready} sent during the backward pass are not in it.
   *
   * @return nanoseconds
   */
  public long lastSendNs() {
    return sendNs;
  }

  /**
   * How long the last {@link #finish} waited idle, after its last chunk went, for the answer: the
   * server waiting for the slowest worker, summing, and the way back.
   *
   * @return nanoseconds
   */
  public long lastWaitNs() {
    return waitNs;
  }

  /**
   * How long the last {@link #finish}, after its last chunk went, spent taking answer chunks in:
   * decoding them into the vector (chunks that arrived during the backward pass are not in it).
   *
   * @return nanoseconds
   */
  public long lastReceiveNs() {
    return receiveNs;
  }

  /**
   * Tells the server that this worker failed, so it aborts the step for every worker at once
   * instead of waiting for the step timeout. Best effort: a server that is gone is not an error.
   *
   * @param step the step the worker was at
   * @param reason what failed
   * @param permanent whether running the stage again would fail the same way (the worker's data or
   *     configuration is wrong), so the driver does not retry it
   */
  public void abort(long step, String reason, boolean permanent) {
    final byte[] text = String.valueOf(reason).getBytes(StandardCharsets.UTF_8);
    for (ShardProxy proxy : proxies) {
      proxy.abort(step, text, permanent);
    }
  }

  /**
   * Result frames this worker dropped, never applied: malformed ones, another job's, those whose
   * tag was not made with the job's key, and replays of the server's own frames (an answer to
   * another step, a second copy of a chunk, the sum of a statistics round not awaited).
   *
   * @return the count since this exchange connected
   */
  public long rejectedFrames() {
    return open.rejectedFrames;
  }

  /**
   * @return whether this worker's chunks and answers go through the job's shared memory
   */
  public boolean sharesGradients() {
    return shared != null;
  }

  /** Closes the streams, the client and any media driver this worker started; idempotent. */
  @Override
  public void close() {
    if (!closed) {
      lock.lock();
      try {
        closed = true;
        pumping = false;
      } finally {
        lock.unlock();
      }
      if (pump != null) {
        LockSupport.unpark(pump);
        try {
          pump.join(TimeUnit.SECONDS.toMillis(5));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      for (int s = 0; s < proxies.length; s++) {
        CloseHelper.closeAll(proxies[s].publication(), adapters[s].results);
      }
      // the pump no longer works (closed, set under the lock), and this is the training thread
      CloseHelper.closeAll(shared, aeron, driver);
    }
  }
}
