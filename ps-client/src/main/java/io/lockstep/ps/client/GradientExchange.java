package io.lockstep.ps.client;

import static io.aeron.logbuffer.FrameDescriptor.FRAME_ALIGNMENT;

import io.aeron.Aeron;
import io.aeron.FragmentAssembler;
import io.aeron.Image;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.logbuffer.Header;
import io.aeron.protocol.DataHeaderFlyweight;
import io.lockstep.conf.Compression;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Transport;
import io.lockstep.protocol.ChunkCodec;
import io.lockstep.protocol.ChunkLayout;
import io.lockstep.protocol.Frame;
import io.lockstep.protocol.FramePublisher;
import io.lockstep.protocol.FrameTag;
import io.lockstep.protocol.MediaDrivers;
import io.lockstep.protocol.ParameterServerException;
import io.lockstep.protocol.ServerAddress;
import io.lockstep.protocol.ServerShards;
import io.lockstep.protocol.SharedGradients;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.agrona.CloseHelper;
import org.agrona.DirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.NanoClock;
import org.agrona.concurrent.SystemNanoClock;
import org.agrona.concurrent.UnsafeBuffer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One worker's connection to the parameter server, to all its shards at once. {@link #exchange}
 * sends the worker's gradient sum for a step and overwrites it, in place, with the sum over all
 * workers.
 *
 * <p>Not thread-safe: one training thread owns it.
 */
public final class GradientExchange implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(GradientExchange.class);

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

  /** The streams to and from one shard, and what of its result has arrived. */
  private final class Link {
    final ServerAddress address;
    final int firstByte;
    final Publication gradients;
    final Subscription results;
    final FramePublisher publisher;
    final FragmentAssembler assembler = new FragmentAssembler(this::onResult);
    final FrameTag tag;

    /**
     * The stream this job's results came on, once one came: another server on the same endpoint (a
     * restarted one) adds a stream of its own, so only this one's going says the server went.
     */
    Image server;

    final ChunkLayout layout;
    final GradientEncoder encoder;
    final boolean[] resultReceived;
    int chunksSent;
    int chunksReceived;

    Link(ServerAddress address, int firstByte, Publication gradients, Subscription results) {
      this.address = address;
      this.firstByte = firstByte;
      this.gradients = gradients;
      this.results = results;
      this.tag = new FrameTag(address.key());
      this.layout = address.layout();
      this.encoder =
          compression == Compression.NONE
              ? null
              : new GradientEncoder(compression, topKRatio, threshold, layout);
      this.resultReceived = new boolean[layout.chunkCount()];
      this.publisher =
          new FramePublisher(
              gradients,
              address.key(),
              clock,
              new BackoffIdleStrategy(),
              stepTimeoutNs,
              GradientExchange.this::pollResults,
              "worker " + rank + (shards.count() > 1 ? " to shard " + address.shard() : ""));
    }

    boolean hasUnsent() {
      return chunksSent < resultReceived.length;
    }

    /**
     * Whether the stream takes the next chunk now, without waiting: its window (what the media
     * driver has not yet sent, against what the receiver allows) has room for the largest frame.
     */
    boolean canSendNow() {
      final int payload =
          shared != null ? 0 : encoder == null ? address.chunkBytes() : encoder.out().capacity();
      return gradients.availableWindow()
          >= DataHeaderFlyweight.HEADER_LENGTH + Frame.HEADER_LENGTH + payload + FRAME_ALIGNMENT;
    }

    /** Where in the whole vector the next chunk to send begins. */
    long nextUnsentByte() {
      return firstByte + (long) layout.offsetBytes(layout.chunkSentAt(chunksSent));
    }

    void sendNext() {
      sendChunk(layout.chunkSentAt(chunksSent++));
    }

    private void sendChunk(int chunk) {
      if (shared != null) {
        sendShared(chunk);
        return;
      }
      final int length =
          encoder == null
              ? layout.lengthBytes(chunk)
              : encoder.encode(target, firstByte, chunk, sampleCount);
      encodeHeader(chunk, length, encoder == null ? ChunkCodec.F32 : encoder.encoding());
      if (encoder == null) {
        publisher.send(target, firstByte + layout.offsetBytes(chunk), length, step);
      } else {
        publisher.send(encoder.out(), 0, length, step);
      }
    }

    /** Writes a chunk into this worker's shared slot, then sends its frame, with no payload. */
    private void sendShared(int chunk) {
      final int at = firstByte + layout.offsetBytes(chunk);
      shared.slot(rank).putBytes(at, target, at, layout.lengthBytes(chunk));
      encodeHeader(chunk, 0, ChunkCodec.SHARED);
      publisher.send(target, 0, 0, step);
    }

    /** Writes the open step's gradient header for a chunk of {@code length} payload bytes. */
    private void encodeHeader(int chunk, int length, byte encoding) {
      Frame.encode(
          publisher.header(),
          Frame.TYPE_GRADIENT,
          rank,
          address.jobId(),
          step,
          chunk,
          layout.chunkCount(),
          sampleCount,
          length,
          address.parameterCount());
      Frame.encodingAndFlags(publisher.header(), encoding, stepFlags);
    }

    private void onResult(DirectBuffer buffer, int offset, int length, Header header) {
      final String problem = problem(buffer, offset, length);
      if (problem != null) {
        rejectedFrames++;
        LOG.debug(
            "worker {}: rejected result frame #{} at step {}: {}",
            rank,
            rejectedFrames,
            step,
            problem);
        return;
      }
      if (server == null) {
        server = (Image) header.context();
      }
      final byte type = Frame.type(buffer, offset);
      if (type == Frame.TYPE_ABORT) {
        abortReason =
            (shards.count() > 1 ? "shard " + address.shard() + ": " : "")
                + buffer.getStringWithoutLengthUtf8(
                    offset + Frame.HEADER_LENGTH, Frame.payloadLength(buffer, offset));
        return;
      }
      if (type == Frame.TYPE_STATISTICS_RESULT) {
        statisticsReceived = true;
        target.putBytes(0, buffer, offset + Frame.HEADER_LENGTH, statisticsBytes);
        return;
      }
      final int chunk = Frame.chunkIndex(buffer, offset);
      final int count = layout.lengthBytes(chunk) / Float.BYTES;
      resultReceived[chunk] = true;
      chunksReceived++;
      final long decodeStartNs = awaiting ? clock.nanoTime() : 0;
      totalSamples = Frame.samples(buffer, offset);
      if (Frame.encoding(buffer, offset) == ChunkCodec.SHARED) {
        final int at = firstByte + layout.offsetBytes(chunk);
        target.putBytes(at, shared.sum(), at, count * Float.BYTES);
      } else {
        ChunkCodec.decode(
            Frame.encoding(buffer, offset),
            buffer,
            offset + Frame.HEADER_LENGTH,
            Frame.payloadLength(buffer, offset),
            target,
            firstByte + layout.offsetBytes(chunk),
            count);
      }
      if (awaiting) {
        decodeNs += clock.nanoTime() - decodeStartNs;
      }
    }

    /**
     * Null when the frame is the server's and this worker waits for it: an abort, the sum of the
     * open statistics round, or an answer chunk of the open step not yet taken; else why not. A
     * frame signed with the job's key but for another step or round, or a second copy of a chunk,
     * is a replay: the server sends each once.
     */
    private String problem(DirectBuffer buffer, int offset, int length) {
      final String header = Frame.headerProblem(buffer, offset, length);
      if (header != null) {
        return header;
      }
      if (Frame.jobId(buffer, offset) != address.jobId()) {
        return "frame of job " + Frame.jobId(buffer, offset);
      }
      if (!tag.verify(buffer, offset, length)) {
        return "a wrong tag (not signed with this job's key)";
      }
      final byte type = Frame.type(buffer, offset);
      if (type == Frame.TYPE_ABORT) {
        return null;
      }
      final long frameStep = Frame.step(buffer, offset);
      final int chunk = Frame.chunkIndex(buffer, offset);
      if (type == Frame.TYPE_STATISTICS_RESULT) {
        if (statisticsRound < 0 || chunk != statisticsRound || frameStep != step) {
          return "the sum of statistics round " + chunk + " of step " + frameStep + ", not awaited";
        }
        if (statisticsReceived) {
          return "a second sum of statistics round " + chunk;
        }
        return Frame.payloadLength(buffer, offset) == statisticsBytes
            ? null
            : "statistics of " + Frame.payloadLength(buffer, offset) + " bytes";
      }
      if (type != Frame.TYPE_RESULT) {
        return "a frame of type " + type;
      }
      if (!stepOpen || frameStep != step) {
        return "an answer to step " + frameStep + (stepOpen ? "" : ", no step open");
      }
      if (chunk < 0 || chunk >= resultReceived.length) {
        return "chunk " + chunk + " of " + resultReceived.length;
      }
      if (resultReceived[chunk]) {
        return "a second answer for chunk " + chunk;
      }
      if (Frame.encoding(buffer, offset) == ChunkCodec.SHARED) {
        return shared == null
            ? "an answer in shared memory, which this worker does not share"
            : Frame.payloadLength(buffer, offset) == 0 ? null : "a payload beside shared memory";
      }
      return ChunkCodec.frameProblem(buffer, offset, layout.lengthBytes(chunk) / Float.BYTES);
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

  private final Link[] links;
  private final IdleStrategy idle = new BackoffIdleStrategy();
  private final NanoClock clock;
  private final long stepTimeoutNs;
  private final Compression compression;
  private final double topKRatio;
  private final double threshold;

  private UnsafeBuffer target;
  private long step;

  /** Between {@link #begin} and the end of {@link #finish}: the step's sample count and flags. */
  private boolean stepOpen;

  private int sampleCount;
  private byte stepFlags;
  private int statisticsRound = -1;
  private int statisticsBytes;

  /**
   * Result frames dropped: malformed, another job's, with a wrong tag, or not awaited (a replay).
   */
  private long rejectedFrames;

  private boolean statisticsReceived;
  private int totalSamples;

  /** Whether {@link #finish} has sent everything and waits: decoding is timed then. */
  private boolean awaiting;

  /** Time spent decoding answer chunks while {@link #awaiting}. */
  private long decodeNs;

  private long sendNs;
  private long waitNs;
  private long receiveNs;
  private String abortReason;
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
    this.compression = context.compression;
    this.topKRatio = context.topKRatio;
    this.threshold = context.threshold;
    this.links = new Link[shards.count()];
    for (int s = 0; s < links.length; s++) {
      links[s] = new Link(shards.shard(s), shards.first(s) * Float.BYTES, gradients[s], results[s]);
    }
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
    if (stepOpen) {
      throw new IllegalStateException("step " + this.step + " was begun and not finished");
    }
    this.target = gradient;
    this.step = step;
    this.sampleCount = sampleCount;
    this.stepFlags = lastOfStage ? Frame.FLAG_FINAL : 0;
    this.totalSamples = -1;
    for (Link link : links) {
      link.chunksSent = 0;
      link.chunksReceived = 0;
      Arrays.fill(link.resultReceived, false);
    }
    stepOpen = true;
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
      for (Link link : links) {
        answered += link.chunksReceived;
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
    for (int s = links.length - 1; s >= 0; s--) {
      final Link link = links[s];
      while (link.hasUnsent() && link.nextUnsentByte() >= readyFromByte && link.canSendNow()) {
        link.sendNext();
        sent++;
      }
      if (link.hasUnsent()) {
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
        for (Link link : links) {
          if (link.hasUnsent()) {
            link.sendNext();
            sent = true;
          }
        }
        pollResults();
      }
      final long sentNs = clock.nanoTime();
      awaiting = true;
      decodeNs = 0;
      awaitServer(this::allResultsIn, "result", this::resultProgress);
      final long endNs = clock.nanoTime();
      sendNs = sentNs - startNs;
      receiveNs = decodeNs;
      waitNs = Math.max(0, endNs - sentNs - decodeNs);
      return totalSamples;
    } finally {
      awaiting = false;
      stepOpen = false;
    }
  }

  private void requireOpenStep() {
    if (!stepOpen) {
      throw new IllegalStateException("no step is open; call begin first");
    }
  }

  private boolean allResultsIn() {
    for (Link link : links) {
      if (link.chunksReceived != link.resultReceived.length) {
        return false;
      }
    }
    return true;
  }

  private String resultProgress() {
    final StringBuilder progress = new StringBuilder(" (");
    for (Link link : links) {
      if (progress.length() > 2) {
        progress.append(", ");
      }
      if (links.length > 1) {
        progress.append("shard ").append(link.address.shard()).append(' ');
      }
      progress.append(link.chunksReceived).append('/').append(link.resultReceived.length);
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
    if (stepOpen) {
      throw new IllegalStateException(
          "statistics round " + round + " while the gradient of step " + this.step + " is open");
    }
    final Link link = links[0];
    final ServerAddress address = link.address;
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
        link.publisher.header(),
        Frame.TYPE_STATISTICS,
        rank,
        address.jobId(),
        step,
        round,
        1,
        0,
        bytes,
        address.parameterCount());
    link.publisher.send(values, 0, bytes, step);
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
        final String lost = lostServer();
        if (lost != null) {
          throw new ParameterServerException(
              "worker "
                  + rank
                  + ": step "
                  + step
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

  /**
   * Whether a server this worker was connected to has gone: its result stream has no publisher left
   * (Aeron notices a vanished UDP publisher after the image liveness timeout, 10 s by default) or
   * the Aeron client has closed it.
   *
   * @return what is gone, or null while every server is there
   */
  private String lostServer() {
    for (Link link : links) {
      if (link.server != null
          ? link.server.isClosed()
          : link.results.isClosed() || !link.results.isConnected()) {
        return "no parameter server on "
            + link.results.channel()
            + " stream "
            + link.results.streamId()
            + " any more";
      }
    }
    return null;
  }

  private int pollResults() {
    int work = 0;
    for (Link link : links) {
      work += link.results.poll(link.assembler, 64);
    }
    if (abortReason != null) {
      throw new ParameterServerException("worker " + rank + ": server aborted: " + abortReason);
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
    for (Link link : links) {
      final ServerAddress address = link.address;
      final int length = Math.min(text.length, address.chunkBytes());
      Frame.encode(
          link.publisher.header(),
          Frame.TYPE_ABORT,
          rank,
          address.jobId(),
          step,
          0,
          0,
          0,
          length,
          address.parameterCount());
      Frame.encodingAndFlags(
          link.publisher.header(), (byte) 0, permanent ? Frame.FLAG_PERMANENT : 0);
      link.publisher.offerOnce(new UnsafeBuffer(text), 0, length);
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
    return rejectedFrames;
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
      for (Link link : links) {
        CloseHelper.closeAll(link.gradients, link.results);
      }
      // the pump no longer works (closed, set under the lock), and this is the training thread
      CloseHelper.closeAll(shared, aeron, driver);
    }
  }
}
