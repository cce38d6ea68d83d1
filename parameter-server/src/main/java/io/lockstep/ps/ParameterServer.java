package io.lockstep.ps;

import io.aeron.Aeron;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.Configuration;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Transport;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.agrona.CloseHelper;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.NanoClock;
import org.agrona.concurrent.SystemNanoClock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running parameter server: an embedded Aeron media driver, a client, and the aggregation agent
 * on its own thread. Start it with {@link #launch(Context)} and close it when the job ends.
 *
 * <pre>{@code
 * try (ParameterServer server = ParameterServer.launch(new ParameterServer.Context()
 *     .address(address).stepTimeout(Duration.ofSeconds(60)))) {
 *   ... run the workers against server.address() ...
 *   server.checkHealthy();
 * }
 * }</pre>
 */
public final class ParameterServer implements RunningServer {
  private static final Logger LOG = LoggerFactory.getLogger(ParameterServer.class);

  /**
   * How long a media driver and its clients wait to hear from each other before they give each
   * other up: 30 s, not Aeron's 10. On a loaded 2-core host a JVM can go unscheduled, or wait at a
   * safepoint, for longer than 10 s; a step that times out is retried, while Aeron's default for a
   * client that loses its driver is to end the whole JVM.
   */
  static final Duration LIVENESS_TIMEOUT = Duration.ofSeconds(30);

  /** Per-process settings of a server; never serialized. */
  public static final class Context {
    private ServerShards shards;
    private Duration stepTimeout = Keys.STEP_TIMEOUT.defaultOf();
    private long firstStep;
    private NanoClock clock = SystemNanoClock.INSTANCE;

    /**
     * The job this server serves; its {@code aeronDirectory} is where the embedded driver lives.
     *
     * @param address the job's address
     * @return this
     */
    public Context address(ServerAddress address) {
      this.shards = ServerShards.of(address);
      return this;
    }

    /**
     * Serve every shard of a sharded server in this process, each on its own thread, all on one
     * media driver: the shards' {@code aeronDirectory}.
     *
     * @param shards the job's shards
     * @return this
     */
    public Context shards(ServerShards shards) {
      this.shards = shards;
      return this;
    }

    /**
     * Longest wait, from a step's first frame, for every worker's gradient of that step.
     *
     * @param stepTimeout a positive duration
     * @return this
     */
    public Context stepTimeout(Duration stepTimeout) {
      this.stepTimeout = stepTimeout;
      return this;
    }

    /**
     * The global step the workers start at: 0 for a new run, the checkpoint's step for a resumed
     * one. Frames of any other step are rejected as stale or early.
     *
     * @param firstStep a step number >= 0
     * @return this
     */
    public Context firstStep(long firstStep) {
      if (firstStep < 0) {
        throw new IllegalArgumentException("first step " + firstStep + " < 0");
      }
      this.firstStep = firstStep;
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
  private final MediaDriver driver;
  private final Aeron aeron;

  /** The job's gradients, where workers write their chunks; null where frames carry them. */
  private final SharedGradients shared;

  private final List<ServerAgent> agents;
  private final List<AgentRunner> runners;
  private boolean closed;

  private ParameterServer(
      ServerShards shards,
      MediaDriver driver,
      Aeron aeron,
      SharedGradients shared,
      List<ServerAgent> agents,
      List<AgentRunner> runners) {
    this.shards = shards;
    this.driver = driver;
    this.aeron = aeron;
    this.shared = shared;
    this.agents = agents;
    this.runners = runners;
  }

  /**
   * Starts a media driver, the streams and one aggregation thread per shard.
   *
   * @param context the server's settings
   * @return the running server
   */
  public static ParameterServer launch(Context context) {
    final ServerShards shards = Objects.requireNonNull(context.shards, "address");
    final ServerAddress first = shards.shard(0);
    MediaDriver driver = null;
    Aeron aeron = null;
    SharedGradients shared = null;
    final List<AgentRunner> runners = new ArrayList<>();
    try {
      driver =
          launchDriver(
              first.aeronDirectory(), first.termLengthBytes(), first.transport() == Transport.UDP);
      if (SharedGradients.carries(first)) {
        shared = SharedGradients.create(shards);
      }
      aeron = Aeron.connect(clientContext(driver.aeronDirectoryName()));
      final List<ServerAgent> agents = new ArrayList<>();
      for (int s = 0; s < shards.count(); s++) {
        final ServerAgent agent =
            agent(
                aeron,
                shards.shard(s),
                context.clock,
                context.stepTimeout,
                context.firstStep,
                shared,
                shards.first(s) * Float.BYTES);
        final AgentRunner runner = start(agent);
        agents.add(agent);
        runners.add(runner);
      }
      LOG.info(
          "parameter server up: {} workers, {} parameters in {} shard(s), {} transport{}{},"
              + " driver {}",
          first.workers(),
          shards.parameterCount(),
          shards.count(),
          first.transport(),
          shared != null ? " (gradients in shared memory)" : "",
          first.transport() == Transport.UDP
              ? " on " + first.host() + " (port " + first.port() + " and up)"
              : "",
          driver.aeronDirectoryName());
      return new ParameterServer(
          shards, driver, aeron, shared, List.copyOf(agents), List.copyOf(runners));
    } catch (RuntimeException e) {
      CloseHelper.quietCloseAll(runners);
      CloseHelper.quietCloseAll(shared, aeron, driver);
      throw e;
    }
  }

  /** Runs an agent on its own thread; an error it throws aborts the step for every worker. */
  static AgentRunner start(ServerAgent agent) {
    final AgentRunner runner =
        new AgentRunner(
            new BackoffIdleStrategy(),
            error -> agent.abort("parameter server failed: " + error),
            null,
            agent);
    AgentRunner.startOnThread(runner);
    return runner;
  }

  /**
   * Opens one shard's streams on {@code aeron} and makes the agent that serves them.
   *
   * @param shared the job's shared gradients, or null where frames carry them
   * @param firstByte where the shard's range begins in the whole vector, in bytes
   */
  static ServerAgent agent(
      Aeron aeron,
      ServerAddress address,
      NanoClock clock,
      Duration stepTimeout,
      long firstStep,
      SharedGradients shared,
      int firstByte) {
    final Subscription gradients =
        aeron.addSubscription(address.gradientChannel(), address.gradientStreamId());
    if (address.asynchronous()) {
      final Publication[] replies = new Publication[address.workers()];
      for (int rank = 0; rank < replies.length; rank++) {
        replies[rank] =
            aeron.addExclusivePublication(
                address.resultPublicationChannel(), address.replyStreamId(rank));
      }
      return new AsyncAgent(address, gradients, replies, clock, stepTimeout.toNanos(), firstStep);
    }
    final Publication results =
        aeron.addExclusivePublication(address.resultPublicationChannel(), address.resultStreamId());
    return new AggregationAgent(
        address, gradients, results, clock, stepTimeout.toNanos(), firstStep, shared, firstByte);
  }

  /**
   * Launches an embedded media driver for this process, in the shared threading mode so it costs
   * one thread, backing off when idle because training needs the cores; its directory is its user's
   * alone ({@link AeronDirectories#restrict}); its UDP sockets' buffers hold every worker's window
   * ({@link SocketBuffers}).
   *
   * @param directory the driver's Aeron directory
   * @param termLengthBytes the term length of its IPC and UDP publications
   * @param udp whether it will open UDP sockets, not only IPC
   * @return the running driver
   */
  static MediaDriver launchDriver(String directory, int termLengthBytes, boolean udp) {
    final Path path = Path.of(directory).toAbsolutePath();
    if (path.getParent() != null) {
      AeronDirectories.removeStale(path.getParent());
    }
    AeronDirectories.own(path);
    final MediaDriver.Context context =
        new MediaDriver.Context()
            .aeronDirectoryName(directory)
            .dirDeleteOnStart(true)
            .dirDeleteOnShutdown(true)
            .threadingMode(ThreadingMode.SHARED)
            .sharedIdleStrategy(new BackoffIdleStrategy())
            .ipcTermBufferLength(termLengthBytes)
            .publicationTermBufferLength(termLengthBytes)
            .termBufferSparseFile(true)
            .socketSndbufLength(SocketBuffers.sendBytes(udp))
            .socketRcvbufLength(
                SocketBuffers.receiveBytes(Configuration.INITIAL_WINDOW_LENGTH_DEFAULT, udp))
            .clientLivenessTimeoutNs(LIVENESS_TIMEOUT.toNanos())
            // Aeron requires it longer than the clients' liveness, as its defaults are (15 s, 10 s)
            .publicationUnblockTimeoutNs(LIVENESS_TIMEOUT.plusSeconds(15).toNanos())
            .driverTimeoutMs(LIVENESS_TIMEOUT.toMillis());
    final MediaDriver driver = MediaDriver.launch(context);
    try {
      AeronDirectories.restrict(path);
    } catch (IllegalStateException e) {
      driver.close();
      throw e;
    }
    return driver;
  }

  /**
   * A client context for the media driver at {@code directory}: Aeron's errors are logged, and a
   * lost driver closes the client, failing what uses it (the step, then the stage, which the driver
   * retries with a new server) instead of Aeron's default, {@code System.exit(-1)} with a banner on
   * stderr.
   */
  static Aeron.Context clientContext(String directory) {
    return new Aeron.Context()
        .aeronDirectoryName(directory)
        .driverTimeoutMs(LIVENESS_TIMEOUT.toMillis())
        .errorHandler(error -> LOG.error("Aeron client of {}: {}", directory, error.toString()));
  }

  /**
   * The address workers connect to.
   *
   * @return the job's address; of shard 0 when sharded
   */
  public ServerAddress address() {
    return shards.shard(0);
  }

  /**
   * The shards workers connect to.
   *
   * @return the job's shards
   */
  @Override
  public ServerShards shards() {
    return shards;
  }

  /**
   * The global step the server sums next: its first step plus the steps whose result has been sent
   * to every worker, by every shard.
   *
   * @return the step
   */
  public long stepsCompleted() {
    long steps = Long.MAX_VALUE;
    for (ServerAgent agent : agents) {
      steps = Math.min(steps, agent.stepsCompleted());
    }
    return steps;
  }

  /**
   * Frames that were dropped: another job's, an unknown rank's, a stale step's, malformed ones.
   *
   * @return the count, over all shards
   */
  @Override
  public long rejectedFrames() {
    long rejected = 0;
    for (ServerAgent agent : agents) {
      rejected += agent.rejectedFrames();
    }
    return rejected;
  }

  /**
   * Throws the server's failure, if it had one.
   *
   * @throws ParameterServerException naming the step and the missing workers
   */
  @Override
  public void checkHealthy() {
    for (ServerAgent agent : agents) {
      final String failure = agent.failure();
      if (failure != null) {
        throw new ParameterServerException(
            (agents.size() > 1 ? "shard " + agents.indexOf(agent) + ": " : "") + failure,
            agent.failurePermanent());
      }
    }
  }

  @Override
  public List<ShardSpan> drainSpans() {
    final List<ShardSpan> spans = new ArrayList<>();
    for (ServerAgent agent : agents) {
      agent.drainSpans(spans);
    }
    return spans;
  }

  /** Stops the agents, the client and the media driver; idempotent. */
  @Override
  public void close() {
    if (!closed) {
      closed = true;
      CloseHelper.closeAll(runners);
      // after the agents, which read it; before the driver, whose directory holds its file
      CloseHelper.closeAll(shared, aeron, driver);
    }
  }
}
