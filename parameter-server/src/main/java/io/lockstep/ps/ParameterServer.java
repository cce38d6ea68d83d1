package io.lockstep.ps;

import io.aeron.Aeron;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import java.time.Duration;
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
public final class ParameterServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ParameterServer.class);

  /** Per-process settings of a server; never serialized. */
  public static final class Context {
    private ServerAddress address;
    private Duration stepTimeout = Duration.ofSeconds(120);
    private long firstStep;
    private NanoClock clock = SystemNanoClock.INSTANCE;

    /**
     * The job this server serves; its {@code aeronDirectory} is where the embedded driver lives.
     *
     * @param address the job's address
     * @return this
     */
    public Context address(ServerAddress address) {
      this.address = address;
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

  private final ServerAddress address;
  private final MediaDriver driver;
  private final Aeron aeron;
  private final AggregationAgent agent;
  private final AgentRunner runner;
  private boolean closed;

  private ParameterServer(
      ServerAddress address,
      MediaDriver driver,
      Aeron aeron,
      AggregationAgent agent,
      AgentRunner runner) {
    this.address = address;
    this.driver = driver;
    this.aeron = aeron;
    this.agent = agent;
    this.runner = runner;
  }

  /**
   * Starts a media driver, the streams and the aggregation thread.
   *
   * @param context the server's settings
   * @return the running server
   */
  public static ParameterServer launch(Context context) {
    final ServerAddress address = Objects.requireNonNull(context.address, "address");
    MediaDriver driver = null;
    Aeron aeron = null;
    try {
      driver = launchDriver(address.aeronDirectory(), address.termLengthBytes());
      aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName()));
      final Subscription gradients =
          aeron.addSubscription(address.gradientChannel(), ServerAddress.GRADIENT_STREAM_ID);
      final Publication results =
          aeron.addExclusivePublication(
              address.resultPublicationChannel(), ServerAddress.RESULT_STREAM_ID);
      final AggregationAgent agent =
          new AggregationAgent(
              address,
              gradients,
              results,
              context.clock,
              context.stepTimeout.toNanos(),
              context.firstStep);
      final AgentRunner runner =
          new AgentRunner(
              new BackoffIdleStrategy(),
              error -> agent.abort("parameter server failed: " + error),
              null,
              agent);
      AgentRunner.startOnThread(runner);
      LOG.info(
          "parameter server up: {} workers, {} parameters, {} transport, driver {}",
          address.workers(),
          address.parameterCount(),
          address.transport(),
          driver.aeronDirectoryName());
      return new ParameterServer(address, driver, aeron, agent, runner);
    } catch (RuntimeException e) {
      CloseHelper.quietCloseAll(aeron, driver);
      throw e;
    }
  }

  /**
   * Launches an embedded media driver for this process, in the shared threading mode so it costs
   * one thread, backing off when idle because training needs the cores.
   */
  static MediaDriver launchDriver(String directory, int termLengthBytes) {
    return MediaDriver.launch(
        new MediaDriver.Context()
            .aeronDirectoryName(directory)
            .dirDeleteOnStart(true)
            .dirDeleteOnShutdown(true)
            .threadingMode(ThreadingMode.SHARED)
            .sharedIdleStrategy(new BackoffIdleStrategy())
            .ipcTermBufferLength(termLengthBytes)
            .publicationTermBufferLength(termLengthBytes)
            .termBufferSparseFile(true));
  }

  /**
   * The address workers connect to.
   *
   * @return the job's address
   */
  public ServerAddress address() {
    return address;
  }

  /**
   * The global step the server sums next: its first step plus the steps whose result has been sent
   * to every worker.
   *
   * @return the step
   */
  public long stepsCompleted() {
    return agent.stepsCompleted();
  }

  /**
   * Frames that were dropped: another job's, an unknown rank's, a stale step's, malformed ones.
   *
   * @return the count
   */
  public long rejectedFrames() {
    return agent.rejectedFrames();
  }

  /**
   * Throws the server's failure, if it had one.
   *
   * @throws ParameterServerException naming the step and the missing workers
   */
  public void checkHealthy() {
    final String failure = agent.failure();
    if (failure != null) {
      throw new ParameterServerException(failure);
    }
  }

  /** Stops the agent, the client and the media driver; idempotent. */
  @Override
  public void close() {
    if (!closed) {
      closed = true;
      CloseHelper.closeAll(runner, aeron, driver);
    }
  }
}
