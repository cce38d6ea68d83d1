package io.lockstep.ps;

import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.FragmentAssembler;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.logbuffer.Header;
import io.lockstep.conf.SyncMode;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.ConfigureMessage;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FrameKey;
import io.lockstep.protocol.FrameTag;
import io.lockstep.protocol.MediaDrivers;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.StatusMessage;
import java.nio.file.Path;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.AgentRunner;
import org.agrona.concurrent.SleepingMillisIdleStrategy;
import org.agrona.concurrent.SystemNanoClock;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A standalone parameter server shard: a process that listens on one UDP endpoint and serves one
 * shard of whichever job's driver configures it, job after job. Start one per shard host with
 * {@code lockstep parameter-server --host H --port P --secret-file F}; list them, in range order,
 * in the job's {@code lockstep.ps.shard-servers}, and give the driver the same secret file in
 * {@code lockstep.ps.secret-file}. Each job's frames are signed with a key derived from that secret
 * and the job id ({@link FrameKey#forJob}), control frames included: a driver without the secret
 * cannot configure the shard, and nobody without it has frames summed.
 *
 * <p>Control frames use the {@link Frame} header on stream {@value #CONTROL_STREAM_ID} of the
 * shard's endpoint (driver to shard) and of the driver's reply endpoint (shard to driver): {@code
 * CONFIGURE} ({@link ConfigureMessage}) until the shard answers; {@code STATUS} ({@link
 * StatusMessage}) every {@value #STATUS_INTERVAL_MS} ms while a job runs, the first one once its
 * streams are up; {@code END} (job id only), after which the shard stops serving the job.
 */
public final class ShardServer implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ShardServer.class);
  static final int CONTROL_STREAM_ID = 1000;
  static final int STATUS_INTERVAL_MS = 200;
  private static final SyncMode[] MODES = SyncMode.values();

  private final String host;
  private final int port;
  private final int jobs;
  private final byte[] secret;
  private final MediaDriver driver;
  private final Aeron aeron;
  private final Subscription control;
  private final FragmentAssembler assembler = new FragmentAssembler(this::onControl);
  private final UnsafeBuffer status =
      new UnsafeBuffer(new byte[Frame.HEADER_LENGTH + StatusMessage.FIXED_LENGTH + 4096]);
  private final ConfigureMessage configure = new ConfigureMessage();
  private final AtomicBoolean running = new AtomicBoolean(true);

  private Job job;
  private int jobsServed;
  private long rejectedControlFrames;

  /** The job being served. */
  private record Job(
      ServerAddress address,
      FrameTag tag,
      ServerAgent agent,
      AgentRunner runner,
      ExclusivePublication reply) {
    void stop() {
      CloseHelper.quietCloseAll(runner, reply);
    }
  }

  /**
   * Starts the shard's media driver and listens for a driver's configuration.
   *
   * @param host the address to bind, that workers and the driver reach
   * @param port the UDP port: control and gradients; {@code port + 1} carries results
   * @param jobs the number of jobs to serve before {@link #run} returns; 0 for no limit
   * @param secret the secret the jobs' frame keys derive from ({@link FrameKey#readSecret})
   */
  public ShardServer(String host, int port, int jobs, byte[] secret) {
    this.host = host;
    this.port = port;
    this.jobs = jobs;
    this.secret = secret.clone();
    MediaDriver launched = null;
    Aeron client = null;
    try {
      launched =
          MediaDrivers.launch(
              "/dev/shm/lockstep-shard-" + port + "-" + UUID.randomUUID(), 1 << 20, true);
      client = Aeron.connect(MediaDrivers.clientContext(launched.aeronDirectoryName()));
      this.control =
          client.addSubscription("aeron:udp?endpoint=" + host + ":" + port, CONTROL_STREAM_ID);
    } catch (RuntimeException e) {
      CloseHelper.quietCloseAll(client, launched);
      throw e;
    }
    this.driver = launched;
    this.aeron = client;
  }

  /**
   * Runs a shard process: {@code --host H --port P --secret-file F [--jobs N]}. Exits 2 on bad
   * arguments or secret file, 1 when the endpoint cannot be bound.
   *
   * @param args the command line
   */
  public static void main(String[] args) {
    String host = null;
    int port = -1;
    int jobs = 0;
    String secretFile = null;
    final byte[] secret;
    try {
      for (int i = 0; i < args.length; i += 2) {
        if (i + 1 >= args.length) {
          throw new IllegalArgumentException(args[i] + " needs a value");
        }
        switch (args[i]) {
          case "--host" -> host = args[i + 1];
          case "--port" -> port = Integer.parseInt(args[i + 1]);
          case "--jobs" -> jobs = Integer.parseInt(args[i + 1]);
          case "--secret-file" -> secretFile = args[i + 1];
          default -> throw new IllegalArgumentException("unknown option " + args[i]);
        }
      }
      if (host == null || secretFile == null || port < 1024 || port > 65534 || jobs < 0) {
        throw new IllegalArgumentException(
            "--host, --port in [1024, 65534] and --secret-file are required, --jobs >= 0");
      }
      secret = FrameKey.readSecret(Path.of(secretFile), "--secret-file");
    } catch (IllegalArgumentException e) {
      System.err.println(
          "parameter-server: "
              + e.getMessage()
              + "; usage: parameter-server --host H --port P --secret-file F [--jobs N]");
      System.exit(2);
      return;
    }
    System.exit(serve(host, port, jobs, secret));
  }

  /**
   * Serves jobs on {@code host:port} until {@code jobs} have ended (0: until the JVM stops).
   *
   * @param host the address to bind
   * @param port the UDP port
   * @param jobs jobs to serve, 0 for no limit
   * @param secret the secret the jobs' frame keys derive from
   * @return the process exit status: 0, or 1 when the endpoint cannot be bound
   */
  public static int serve(String host, int port, int jobs, byte[] secret) {
    final ShardServer server;
    try {
      server = new ShardServer(host, port, jobs, secret);
    } catch (RuntimeException e) {
      System.err.println(
          "parameter-server: cannot listen on "
              + host
              + ":"
              + port
              + " ("
              + e.getMessage()
              + "); pick a free port and an address of this host");
      return 1;
    }
    final Thread main = Thread.currentThread();
    final Thread hook =
        new Thread(
            () -> {
              server.stop();
              try {
                main.join(5_000);
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
            });
    Runtime.getRuntime().addShutdownHook(hook);
    System.out.println("parameter-server: listening on " + host + ":" + port);
    System.out.flush();
    try {
      server.run();
    } finally {
      server.close();
    }
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException e) {
      // the JVM is already shutting down, and the hook has stopped the server
    }
    return 0;
  }

  /** Serves jobs until {@code jobs} have ended or {@link #stop} is called. */
  public void run() {
    final SleepingMillisIdleStrategy idle = new SleepingMillisIdleStrategy(1);
    long nextStatusNs = 0;
    while (running.get()) {
      int work = control.poll(assembler, 16);
      final long now = SystemNanoClock.INSTANCE.nanoTime();
      if (job != null && now - nextStatusNs >= 0) {
        sendStatus(job);
        nextStatusNs = now + STATUS_INTERVAL_MS * 1_000_000L;
        work++;
      }
      if (jobs > 0 && jobsServed >= jobs) {
        return;
      }
      idle.idle(work);
    }
  }

  /** Makes {@link #run} return. */
  public void stop() {
    running.set(false);
  }

  private void onControl(DirectBuffer buffer, int offset, int length, Header header) {
    if (Frame.headerProblem(buffer, offset, length) != null) {
      LOG.warn("shard {}:{}: dropped a malformed control frame", host, port);
      return;
    }
    final byte type = Frame.type(buffer, offset);
    final long jobId = Frame.jobId(buffer, offset);
    final boolean current = job != null && job.address.jobId() == jobId;
    final FrameTag tag = current ? job.tag : new FrameTag(FrameKey.forJob(secret, jobId));
    if (!tag.verify(buffer, offset, length)) {
      rejectedControlFrames++;
      LOG.warn(
          "shard {}:{}: dropped control frame #{} for job {} with a wrong tag; is its driver's"
              + " lockstep.ps.secret-file the file this process read with --secret-file?",
          host,
          port,
          rejectedControlFrames,
          Long.toHexString(jobId));
      return;
    }
    if (type == Frame.TYPE_END) {
      if (current) {
        LOG.info("shard {}:{}: job {} ended", host, port, Long.toHexString(job.address.jobId()));
        sendStatus(job);
        job.stop();
        job = null;
        jobsServed++;
      }
      return;
    }
    final ConfigureMessage configure =
        type == Frame.TYPE_CONFIGURE ? this.configure.wrap(buffer, offset) : null;
    if (configure == null) {
      LOG.warn("shard {}:{}: dropped a control frame of type {}", host, port, type);
      return;
    }
    if (job != null) {
      if (current) {
        return; // the driver repeats CONFIGURE until it hears a STATUS
      }
      LOG.warn(
          "shard {}:{}: job {} replaces job {}, which never ended",
          host,
          port,
          Long.toHexString(jobId),
          Long.toHexString(job.address.jobId()));
      job.stop();
      job = null;
    }
    final int chunkBytes = configure.chunkSize();
    final int termLength = configure.termLength();
    final long stepTimeoutMs = configure.stepTimeoutMs();
    final int modeOrdinal = configure.modeOrdinal();
    final int staleness = configure.staleness();
    final String replyChannel = configure.replyChannel();
    final ServerAddress address;
    try {
      address =
          new ServerAddress(
              Transport.UDP,
              driver.aeronDirectoryName(),
              host,
              port,
              termLength,
              chunkBytes,
              jobId,
              Frame.samples(buffer, offset),
              Frame.parameterCount(buffer, offset),
              Frame.chunkIndex(buffer, offset),
              modeOrdinal >= 0 && modeOrdinal < MODES.length ? MODES[modeOrdinal] : null,
              staleness,
              FrameKey.forJob(secret, jobId));
    } catch (IllegalArgumentException e) {
      LOG.error(
          "shard {}:{}: rejected job {}: {}", host, port, Long.toHexString(jobId), e.getMessage());
      return;
    }
    ExclusivePublication reply = null;
    final ServerAgent agent;
    try {
      reply = aeron.addExclusivePublication(replyChannel, CONTROL_STREAM_ID);
      agent =
          ParameterServer.agent(
              aeron,
              address,
              SystemNanoClock.INSTANCE,
              Duration.ofMillis(stepTimeoutMs),
              Frame.step(buffer, offset),
              null,
              0);
    } catch (RuntimeException e) {
      LOG.error(
          "shard {}:{}: cannot serve job {}: {}",
          host,
          port,
          Long.toHexString(jobId),
          e.toString());
      return;
    }
    final AgentRunner runner = ParameterServer.start(agent);
    job = new Job(address, tag, agent, runner, reply);
    LOG.info(
        "shard {}:{}: serving shard {} of job {}: {} workers, {} parameters",
        host,
        port,
        address.shard(),
        Long.toHexString(jobId),
        address.workers(),
        address.parameterCount());
  }

  private void sendStatus(Job job) {
    final int payloadLength =
        StatusMessage.encode(status, job.agent.rejectedFrames(), job.agent.failure());
    Frame.encode(
        status,
        Frame.TYPE_STATUS,
        -1,
        job.address.jobId(),
        job.agent.stepsCompleted(),
        job.address.shard(),
        0,
        0,
        payloadLength,
        job.address.parameterCount());
    Frame.encodingAndFlags(
        status, (byte) 0, job.agent.failurePermanent() ? Frame.FLAG_PERMANENT : 0);
    job.tag.sign(status, 0, Frame.HEADER_LENGTH + payloadLength);
    job.reply.offer(status, 0, Frame.HEADER_LENGTH + payloadLength);
  }

  /** Stops the job being served, the client and the media driver. */
  @Override
  public void close() {
    running.set(false);
    if (job != null) {
      job.stop();
      job = null;
    }
    CloseHelper.quietCloseAll(aeron, driver);
  }
}
