package io.lockstep.ps;

import io.aeron.Aeron;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.MediaDrivers;
import io.lockstep.protocol.ParameterServerException;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.protocol.ShardSpan;
import io.lockstep.protocol.SharedGradients;
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
          MediaDrivers.launch(
              first.aeronDirectory(), first.termLengthBytes(), first.transport() == Transport.UDP);
      if (SharedGradients.carries(first)) {
        shared = SharedGradients.create(shards);
      }
      aeron = Aeron.connect(MediaDrivers.clientContext(driver.aeronDirectoryName()));
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
