package io.lockstep.ps;

import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.logbuffer.Header;
import io.lockstep.conf.Keys;
import io.lockstep.protocol.ConfigureMessage;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FrameTag;
import io.lockstep.protocol.MediaDrivers;
import io.lockstep.protocol.ParameterServerException;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.protocol.StatusMessage;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.NanoClock;
import org.agrona.concurrent.SleepingMillisIdleStrategy;
import org.agrona.concurrent.SystemNanoClock;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * A job's parameter server made of standalone {@link ShardServer} processes: configures each with
 * its shard of the job, waits until all report their streams up, then follows their status.
 *
 * <pre>{@code
 * try (RemoteShards server = RemoteShards.configure(new RemoteShards.Context()
 *     .servers(List.of("10.0.0.7:40300", "10.0.0.8:40300")).address(address)
 *     .replyHost("10.0.0.5"))) {
 *   ... run the workers against server.shards() ...
 *   server.checkHealthy();
 * }
 * }</pre>
 */
public final class RemoteShards implements RunningServer {

  /** Per-process settings; never serialized. */
  public static final class Context {
    private List<String> servers = List.of();
    private ServerAddress address;
    private String replyHost = "127.0.0.1";
    private Duration stepTimeout = Keys.STEP_TIMEOUT.defaultOf();
    private Duration connectTimeout = Keys.CONNECT_TIMEOUT.defaultOf();
    private long firstStep;
    private NanoClock clock = SystemNanoClock.INSTANCE;

    /**
     * The shard processes, {@code host:port} each, in range order.
     *
     * @param servers one per shard
     * @return this
     */
    public Context servers(List<String> servers) {
      this.servers = List.copyOf(servers);
      return this;
    }

    /**
     * The whole, unsharded job: its id, workers, parameters, chunk size and term length (UDP).
     *
     * @param address the job's address
     * @return this
     */
    public Context address(ServerAddress address) {
      this.address = address;
      return this;
    }

    /**
     * This host's address as the shard processes reach it, for their status.
     *
     * @param replyHost an IP address or host name
     * @return this
     */
    public Context replyHost(String replyHost) {
      this.replyHost = replyHost;
      return this;
    }

    /**
     * Longest wait for one step at a shard; also how long a silent shard is given.
     *
     * @param stepTimeout a positive duration
     * @return this
     */
    public Context stepTimeout(Duration stepTimeout) {
      this.stepTimeout = stepTimeout;
      return this;
    }

    /**
     * Longest wait for every shard process to answer.
     *
     * @param connectTimeout a positive duration
     * @return this
     */
    public Context connectTimeout(Duration connectTimeout) {
      this.connectTimeout = connectTimeout;
      return this;
    }

    /**
     * The global step the workers start at.
     *
     * @param firstStep a step >= 0
     * @return this
     */
    public Context firstStep(long firstStep) {
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

  private final Context context;
  private final ServerShards shards;
  private final MediaDriver driver;
  private final Aeron aeron;
  private final Subscription replies;
  private final List<ExclusivePublication> controls;
  private final FragmentAssembler assembler = new FragmentAssembler(this::onStatus);
  private final long[] lastStatusNs;
  private final long[] stepsCompleted;
  private final long[] rejected;
  private final String[] failures;
  private final boolean[] permanent;
  private final FrameTag tag;
  private final StatusMessage status = new StatusMessage();
  private boolean closed;

  private RemoteShards(
      Context context,
      ServerShards shards,
      MediaDriver driver,
      Aeron aeron,
      Subscription replies,
      List<ExclusivePublication> controls) {
    this.context = context;
    this.shards = shards;
    this.driver = driver;
    this.aeron = aeron;
    this.replies = replies;
    this.controls = controls;
    this.lastStatusNs = new long[shards.count()];
    this.stepsCompleted = new long[shards.count()];
    this.rejected = new long[shards.count()];
    this.failures = new String[shards.count()];
    this.permanent = new boolean[shards.count()];
    this.tag = new FrameTag(shards.shard(0).key());
  }

  /**
   * Configures every shard process with its shard of the job and waits until all have their streams
   * up.
   *
   * @param context the job and its shard processes
   * @return the running server
   * @throws ParameterServerException when a shard process does not answer within the connect
   *     timeout
   */
  public static RemoteShards configure(Context context) {
    final ServerAddress whole = Objects.requireNonNull(context.address, "address");
    final ServerShards split = ServerShards.split(whole, context.servers.size());
    final List<ServerAddress> placed = new ArrayList<>();
    for (int s = 0; s < split.count(); s++) {
      final String server = context.servers.get(s);
      final int colon = server.lastIndexOf(':');
      placed.add(
          split
              .shard(s)
              .withEndpoint(
                  server.substring(0, colon), Integer.parseInt(server.substring(colon + 1))));
    }
    final ServerShards shards = new ServerShards(placed);
    MediaDriver driver = null;
    Aeron aeron = null;
    try {
      driver = MediaDrivers.launch(whole.aeronDirectory() + "-shards", 1 << 20, true);
      aeron = Aeron.connect(MediaDrivers.clientContext(driver.aeronDirectoryName()));
      final Subscription replies =
          aeron.addSubscription(
              "aeron:udp?endpoint=" + context.replyHost + ":0", ShardServer.CONTROL_STREAM_ID);
      final String replyChannel = awaitResolved(context, replies);
      final List<ExclusivePublication> controls = new ArrayList<>();
      for (ServerAddress shard : shards.shards()) {
        controls.add(
            aeron.addExclusivePublication(
                "aeron:udp?endpoint=" + shard.host() + ":" + shard.port(),
                ShardServer.CONTROL_STREAM_ID));
      }
      final RemoteShards server =
          new RemoteShards(context, shards, driver, aeron, replies, controls);
      server.awaitReady(replyChannel);
      return server;
    } catch (RuntimeException e) {
      CloseHelper.quietCloseAll(aeron, driver);
      throw e;
    }
  }

  private static String awaitResolved(Context context, Subscription replies) {
    final long deadlineNs = context.clock.nanoTime() + context.connectTimeout.toNanos();
    final SleepingMillisIdleStrategy idle = new SleepingMillisIdleStrategy(1);
    String resolved;
    while ((resolved = replies.tryResolveChannelEndpointPort()) == null
        || resolved.endsWith(":0")) {
      if (context.clock.nanoTime() - deadlineNs > 0) {
        throw new ParameterServerException(
            "could not bind a UDP port on " + context.replyHost + " for the shards' status");
      }
      idle.idle();
    }
    return resolved;
  }

  /**
   * Sends CONFIGURE to every shard until each answers with a status, within the connect timeout.
   */
  private void awaitReady(String replyChannel) {
    final long startNs = context.clock.nanoTime();
    final long deadlineNs = startNs + context.connectTimeout.toNanos();
    final SleepingMillisIdleStrategy idle = new SleepingMillisIdleStrategy(10);
    long nextSendNs = startNs;
    while (true) {
      replies.poll(assembler, 16);
      checkHealthy();
      final List<String> silent = new ArrayList<>();
      for (int s = 0; s < shards.count(); s++) {
        if (lastStatusNs[s] == 0) {
          silent.add(context.servers.get(s));
        }
      }
      if (silent.isEmpty()) {
        return;
      }
      final long now = context.clock.nanoTime();
      if (now - deadlineNs > 0) {
        throw new ParameterServerException(
            "parameter server shard(s) "
                + silent
                + " did not answer within "
                + context.connectTimeout.toSeconds()
                + " s; start `lockstep parameter-server --host HOST --port PORT --secret-file F` on"
                + " each with the file of lockstep.ps.secret-file (a shard drops a driver's frames"
                + " signed with another secret, and says so in its log), check"
                + " lockstep.ps.shard-servers, or raise lockstep.ps.connect-timeout");
      }
      if (now - nextSendNs >= 0) {
        for (int s = 0; s < shards.count(); s++) {
          if (lastStatusNs[s] == 0) {
            sendConfigure(s, replyChannel);
          }
        }
        nextSendNs = now + 100_000_000L;
      }
      idle.idle();
    }
  }

  private void sendConfigure(int s, String replyChannel) {
    final ServerAddress shard = shards.shard(s);
    final int payload = ConfigureMessage.length(replyChannel);
    final UnsafeBuffer frame = new UnsafeBuffer(new byte[Frame.HEADER_LENGTH + payload]);
    Frame.encode(
        frame,
        Frame.TYPE_CONFIGURE,
        -1,
        shard.jobId(),
        context.firstStep,
        s,
        shards.count(),
        shard.workers(),
        payload,
        shard.parameterCount());
    ConfigureMessage.encode(
        frame,
        shard.chunkBytes(),
        shard.termLengthBytes(),
        context.stepTimeout.toMillis(),
        shard.mode().ordinal(),
        shard.staleness(),
        replyChannel);
    tag.sign(frame, 0, frame.capacity());
    controls.get(s).offer(frame);
  }

  private void onStatus(DirectBuffer buffer, int offset, int length, Header header) {
    if (Frame.headerProblem(buffer, offset, length) != null
        || Frame.type(buffer, offset) != Frame.TYPE_STATUS
        || Frame.jobId(buffer, offset) != shards.shard(0).jobId()
        || status.wrap(buffer, offset) == null
        || !tag.verify(buffer, offset, length)) {
      return;
    }
    final int s = Frame.chunkIndex(buffer, offset);
    if (s < 0 || s >= shards.count()) {
      return;
    }
    lastStatusNs[s] = context.clock.nanoTime();
    stepsCompleted[s] = Frame.step(buffer, offset);
    rejected[s] = status.rejectedFrames();
    final String failure = status.failure();
    if (failure != null && failures[s] == null) {
      permanent[s] = (Frame.flags(buffer, offset) & Frame.FLAG_PERMANENT) != 0;
      failures[s] = failure;
    }
  }

  @Override
  public ServerShards shards() {
    return shards;
  }

  /**
   * The global step every shard has summed up to, as last reported.
   *
   * @return the smallest step over the shards
   */
  public long stepsCompleted() {
    replies.poll(assembler, 64);
    long steps = Long.MAX_VALUE;
    for (long s : stepsCompleted) {
      steps = Math.min(steps, s);
    }
    return steps;
  }

  @Override
  public long rejectedFrames() {
    replies.poll(assembler, 64);
    long total = 0;
    for (long r : rejected) {
      total += r;
    }
    return total;
  }

  /**
   * Throws a shard's failure, or names a shard process that stopped reporting for longer than the
   * step timeout.
   */
  @Override
  public void checkHealthy() {
    replies.poll(assembler, 64);
    final long now = context.clock.nanoTime();
    for (int s = 0; s < shards.count(); s++) {
      if (failures[s] != null) {
        throw new ParameterServerException(
            "shard " + s + " at " + context.servers.get(s) + ": " + failures[s], permanent[s]);
      }
      if (lastStatusNs[s] != 0 && now - lastStatusNs[s] > context.stepTimeout.toNanos()) {
        throw new ParameterServerException(
            "shard "
                + s
                + " at "
                + context.servers.get(s)
                + " stopped reporting "
                + (now - lastStatusNs[s]) / 1_000_000_000
                + " s ago; check that its `lockstep parameter-server` process is alive");
      }
    }
  }

  /** Tells every shard process the job is over, then closes the streams and the media driver. */
  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    final UnsafeBuffer end = new UnsafeBuffer(new byte[Frame.HEADER_LENGTH]);
    final SleepingMillisIdleStrategy idle = new SleepingMillisIdleStrategy(1);
    for (int s = 0; s < controls.size(); s++) {
      Frame.encode(end, Frame.TYPE_END, -1, shards.shard(s).jobId(), 0, s, 0, 0, 0, 0);
      tag.sign(end, 0, Frame.HEADER_LENGTH);
      final Publication control = controls.get(s);
      for (int attempt = 0; attempt < 100 && control.offer(end) < 0; attempt++) {
        idle.idle();
      }
    }
    CloseHelper.quietCloseAll(controls);
    CloseHelper.quietCloseAll(replies, aeron, driver);
  }
}
