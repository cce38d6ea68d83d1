package io.lockstep.conf;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigSyntax;
import com.typesafe.config.ConfigValueFactory;
import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CoderResult;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * The immutable, validated configuration of one training job. The driver builds it once and ships
 * it to every executor, so it holds only plain values.
 *
 * @param jobName the job's name
 * @param modelName the model to train
 * @param dataDir where the dataset lives (a folder or Hadoop URI)
 * @param dataMean normalization mean: one for every channel, or one per channel
 * @param dataStd normalization standard deviation: one for every channel, or one per channel
 * @param workers number of data-parallel workers
 * @param epochs passes over the training set
 * @param batchSize global batch per step
 * @param maxStepsPerEpoch cap on steps per epoch, 0 for none
 * @param seed seed of weights and shuffles
 * @param optimizer update rule
 * @param learningRate learning rate, 0 for the optimizer's usual one
 * @param momentum momentum for momentum/nesterov
 * @param weightDecay L2 coefficient
 * @param workerThreads OpenMP threads per worker
 * @param evalBatchSize evaluation batch
 * @param sparkMaster Spark master URL, empty for local mode
 * @param runDir run directory, empty for a generated one
 * @param transport worker-server transport
 * @param psHost parameter server address; empty for the driver's
 * @param psInterface network interface whose address the parameter server takes; empty for none
 * @param psPort parameter server UDP port
 * @param stepTimeout longest wait for one step's gradients or result
 * @param connectTimeout longest wait for peers to connect
 * @param chunkBytes gradient chunk payload; 0 for the largest the network carries unfragmented
 * @param termLengthBytes Aeron term length
 * @param schedule learning-rate schedule
 * @param scheduleStepSize epochs between decays of the step schedule
 * @param scheduleGamma decay factor of the step schedule
 * @param scheduleMinLearningRate final learning rate of the cosine schedule
 * @param warmupSteps steps of linear warm-up
 * @param scaleLearningRate whether the linear scaling rule applies
 * @param referenceBatchSize batch the learning rate is given for
 * @param clipNorm largest global L2 norm of the mean gradient, 0 for no clipping
 * @param batchNormRunningStats how replicas update BatchNorm's running statistics
 * @param checkpointEverySteps checkpoint interval in steps, 0 for epoch ends only
 * @param checkpointAtEpochEnd whether every epoch end writes a checkpoint
 * @param stageRetries how often a failed stage runs again from its first step
 * @param batchNormSync whether BatchNorm layers normalize with the global batch's statistics
 * @param psShards parameter server shards in the driver JVM
 * @param shardServers host:port of standalone shard processes, in range order; empty for none
 * @param psFrameTags which frames carry an HMAC tag under a per-job key
 * @param psSecretFile the secret file the shard processes' frame keys derive from; empty for none
 * @param psMode how the replicas synchronize
 * @param psStaleness stale-sync: steps the fastest worker may run ahead of the slowest
 * @param psLocalSteps local-sgd: steps between two averagings
 * @param psCompression how workers encode what they send
 * @param psTopKRatio top-k: the fraction of each chunk sent
 * @param psThreshold threshold: the per-sample magnitude an element must reach to be sent
 * @param psOverlap whether synchronous steps send the gradient while the backward pass runs
 * @param workerEngine what computes the forward and backward passes
 * @param dataFormat the layout of the dataset's files
 * @param modelClasses the head's classes, 0 for the model's own
 * @param modelPretrained a saved model to start from, empty for random weights
 * @param modelFreezeLayers layers with parameters kept as the pretrained model has them
 * @param modelScratchBaseline whether the same training from random weights runs afterwards
 * @param dataTrainSamples size of the class-balanced training subset, 0 for all images
 * @param runProgress how the driver shows an epoch's progress
 * @param runTimelineSteps the first steps timeline.json traces, 0 for no timeline
 * @param runReportImages test images report.html shows
 * @param microBatch the largest batch one pass computes (gradient accumulation), 0 for the slice
 * @param elastic whether the run goes on with fewer workers after losing some, and takes them back
 */
public record JobConfig(
    String jobName,
    String modelName,
    String dataDir,
    List<Double> dataMean,
    List<Double> dataStd,
    int workers,
    int epochs,
    int batchSize,
    int maxStepsPerEpoch,
    long seed,
    Optimizer optimizer,
    double learningRate,
    double momentum,
    double weightDecay,
    int workerThreads,
    int evalBatchSize,
    String sparkMaster,
    String runDir,
    Transport transport,
    String psHost,
    String psInterface,
    int psPort,
    Duration stepTimeout,
    Duration connectTimeout,
    long chunkBytes,
    long termLengthBytes,
    Schedule schedule,
    int scheduleStepSize,
    double scheduleGamma,
    double scheduleMinLearningRate,
    int warmupSteps,
    boolean scaleLearningRate,
    int referenceBatchSize,
    double clipNorm,
    RunningStats batchNormRunningStats,
    int checkpointEverySteps,
    boolean checkpointAtEpochEnd,
    int stageRetries,
    boolean batchNormSync,
    int psShards,
    List<String> shardServers,
    FrameTags psFrameTags,
    String psSecretFile,
    SyncMode psMode,
    int psStaleness,
    int psLocalSteps,
    Compression psCompression,
    double psTopKRatio,
    double psThreshold,
    boolean psOverlap,
    ComputeEngine workerEngine,
    DataFormat dataFormat,
    int modelClasses,
    String modelPretrained,
    int modelFreezeLayers,
    boolean modelScratchBaseline,
    int dataTrainSamples,
    ProgressDisplay runProgress,
    int runTimelineSteps,
    int runReportImages,
    int microBatch,
    Elasticity elastic)
    implements Serializable {
  /** The smallest gradient chunk: a 1280-byte link (IPv6's minimum MTU) carries it whole. */
  public static final long SMALLEST_CHUNK_BYTES = 1024;

  private static final String ROOT = "lockstep";

  /**
   * Reads a job from layered HOCON: later layers override earlier ones, the declared defaults come
   * last.
   *
   * @param layers job file first, overrides after it
   * @return the validated configuration
   * @throws ConfigurationException on an unknown key, a malformed value or a value out of range
   */
  public static JobConfig load(Config... layers) {
    Config merged = ConfigFactory.empty();
    for (int i = layers.length - 1; i >= 0; i--) {
      merged = merged.withFallback(layers[i]);
    }
    rejectUnknownKeys(merged);
    final Config config = merged.withFallback(defaults()).resolve();
    final JobConfig job =
        new JobConfig(
            Keys.JOB_NAME.read(config),
            Keys.MODEL_NAME.read(config),
            Keys.DATA_DIR.read(config),
            Keys.DATA_MEAN.read(config),
            Keys.DATA_STD.read(config),
            Keys.WORKERS.read(config),
            Keys.EPOCHS.read(config),
            Keys.BATCH_SIZE.read(config),
            Keys.MAX_STEPS.read(config),
            Keys.SEED.read(config),
            Keys.OPTIMIZER.read(config),
            Keys.LEARNING_RATE.read(config),
            Keys.MOMENTUM.read(config),
            Keys.WEIGHT_DECAY.read(config),
            Keys.WORKER_THREADS.read(config),
            Keys.EVAL_BATCH_SIZE.read(config),
            Keys.SPARK_MASTER.read(config),
            Keys.RUN_DIR.read(config),
            Keys.TRANSPORT.read(config),
            Keys.PS_HOST.read(config),
            Keys.PS_INTERFACE.read(config),
            Keys.PS_PORT.read(config),
            Keys.STEP_TIMEOUT.read(config),
            Keys.CONNECT_TIMEOUT.read(config),
            Keys.CHUNK_BYTES.read(config),
            Keys.TERM_LENGTH_BYTES.read(config),
            Keys.SCHEDULE.read(config),
            Keys.SCHEDULE_STEP_SIZE.read(config),
            Keys.SCHEDULE_GAMMA.read(config),
            Keys.SCHEDULE_MIN_LEARNING_RATE.read(config),
            Keys.WARMUP_STEPS.read(config),
            Keys.SCALE_LEARNING_RATE.read(config),
            Keys.REFERENCE_BATCH_SIZE.read(config),
            Keys.CLIP_NORM.read(config),
            Keys.BATCHNORM_RUNNING_STATS.read(config),
            Keys.CHECKPOINT_EVERY_STEPS.read(config),
            Keys.CHECKPOINT_AT_EPOCH_END.read(config),
            Keys.STAGE_RETRIES.read(config),
            Keys.BATCHNORM_SYNC.read(config),
            Keys.PS_SHARDS.read(config),
            shardServers(Keys.PS_SHARD_SERVERS.read(config)),
            Keys.PS_FRAME_TAGS.read(config),
            Keys.PS_SECRET_FILE.read(config),
            Keys.PS_MODE.read(config),
            Keys.PS_STALENESS.read(config),
            Keys.PS_LOCAL_STEPS.read(config),
            Keys.PS_COMPRESSION.read(config),
            Keys.PS_TOP_K_RATIO.read(config),
            Keys.PS_THRESHOLD.read(config),
            Keys.PS_OVERLAP.read(config),
            Keys.WORKER_ENGINE.read(config),
            Keys.DATA_FORMAT.read(config),
            Keys.MODEL_CLASSES.read(config),
            Keys.MODEL_PRETRAINED.read(config),
            Keys.MODEL_FREEZE_LAYERS.read(config),
            Keys.MODEL_SCRATCH_BASELINE.read(config),
            Keys.DATA_TRAIN_SAMPLES.read(config),
            Keys.RUN_PROGRESS.read(config),
            Keys.RUN_TIMELINE_STEPS.read(config),
            Keys.RUN_REPORT_IMAGES.read(config),
            Keys.MICRO_BATCH.read(config),
            Keys.ELASTIC.read(config));
    job.checkConsistency();
    return job;
  }

  /**
   * Reads a job file: UTF-8 HOCON text that sets at least one key.
   *
   * @param file the job file
   * @return the parsed layer
   * @throws ConfigurationException naming the file when it is missing, a folder, not a regular
   *     file, unreadable, empty or without a key, not UTF-8 text, or not valid HOCON (with the
   *     line)
   */
  public static Config read(Path file) {
    if (Files.isDirectory(file)) {
      throw new ConfigurationException(file + ": a folder, not a job file; give a FILE.conf");
    }
    if (!Files.exists(file)) {
      throw new ConfigurationException(file + ": no such job file");
    }
    if (!Files.isRegularFile(file)) {
      throw new ConfigurationException(
          file + ": not a regular file (a pipe, socket or device); give a FILE.conf");
    }
    final byte[] bytes;
    try {
      bytes = Files.readAllBytes(file);
    } catch (AccessDeniedException e) {
      throw new ConfigurationException(file + ": cannot read (permission denied)", e);
    } catch (IOException e) {
      throw new ConfigurationException(file + ": cannot read (" + e.getMessage() + ")", e);
    }
    final String hint = "a job file sets lockstep.* keys (lockstep config lists them)";
    if (bytes.length == 0) {
      throw new ConfigurationException(file + ": empty (0 bytes); " + hint);
    }
    final Config config;
    try {
      config = parse(utf8(file, bytes), file.toString());
    } catch (ConfigurationException e) {
      if (e.getMessage().endsWith("end of file")) {
        throw new ConfigurationException(
            e.getMessage() + "; the file ends inside a { } or [ ]: is it truncated?", e);
      }
      throw e;
    }
    if (config.isEmpty()) {
      throw new ConfigurationException(file + ": sets no key (only comments or blanks); " + hint);
    }
    return config;
  }

  /** The text of a file's bytes, refusing the first that is not UTF-8, as HOCON files are. */
  private static String utf8(Path file, byte[] bytes) {
    final ByteBuffer in = ByteBuffer.wrap(bytes);
    final CharBuffer out = CharBuffer.allocate(bytes.length);
    final CoderResult result = StandardCharsets.UTF_8.newDecoder().decode(in, out, true);
    if (result.isError()) {
      throw new ConfigurationException(
          String.format(
              "%s: byte %d (0x%02x) is not UTF-8 text; a job file is HOCON text, not %s",
              file, in.position(), bytes[in.position()], "a binary file or another encoding"));
    }
    return out.flip().toString();
  }

  /**
   * Parses HOCON text, such as a job file or one {@code KEY=VALUE} override.
   *
   * @param text HOCON source
   * @param origin where the text came from, for error messages
   * @return the parsed layer
   * @throws ConfigurationException when the text is not valid HOCON
   */
  public static Config parse(String text, String origin) {
    try {
      return ConfigFactory.parseString(
          text,
          ConfigParseOptions.defaults().setSyntax(ConfigSyntax.CONF).setOriginDescription(origin));
    } catch (ConfigException e) {
      // Typesafe Config's message starts with the origin and the line when it knows them
      final String message = e.getMessage();
      throw new ConfigurationException(
          message.startsWith(origin) ? message : origin + ": " + message);
    }
  }

  /**
   * Builds a layer of {@code KEY=VALUE} overrides, each value taken as the literal text a user
   * typed (a number, duration, size or path), never parsed as HOCON.
   *
   * @param overrides key to value text, in order
   * @return a layer for {@link #load}
   */
  public static Config overrides(Map<String, String> overrides) {
    Config layer = ConfigFactory.empty();
    for (Map.Entry<String, String> e : overrides.entrySet()) {
      try {
        layer =
            layer.withValue(e.getKey(), ConfigValueFactory.fromAnyRef(e.getValue(), "override"));
      } catch (ConfigException.BadPath bad) {
        throw new ConfigurationException(
            "override key '"
                + e.getKey()
                + "' is not a key path; `bin/lockstep config` lists the keys");
      }
    }
    return layer;
  }

  /**
   * Returns a copy with the named keys replaced, for programmatic overrides.
   *
   * @param overrides key to value text
   * @return the validated configuration
   */
  public JobConfig with(Map<String, String> overrides) {
    return load(toConfig(), overrides(overrides));
  }

  /** Steps of one epoch for a training set of {@code samples}, after the max-steps cap. */
  public int stepsPerEpoch(int samples) {
    final int full = (samples + batchSize - 1) / batchSize;
    return maxStepsPerEpoch == 0 ? full : Math.min(full, maxStepsPerEpoch);
  }

  /**
   * The learning rate the schedule starts from: the configured one (or the optimizer's usual one
   * when it is 0), times batch-size / reference-batch-size when the linear scaling rule is on.
   *
   * @return the base learning rate
   */
  public double baseLearningRate() {
    final double rate = learningRate > 0 ? learningRate : optimizer.usualLearningRate();
    return scaleLearningRate ? rate * batchSize / referenceBatchSize : rate;
  }

  /**
   * Whether workers send the gradient while the backward pass runs: asked for, in sync mode (the
   * other modes send what the optimizer makes of the whole gradient), and without SyncBatchNorm,
   * whose statistics rounds run inside the backward pass and must not interleave with the chunks.
   *
   * @return whether synchronous steps overlap transfer and backward pass
   */
  public boolean overlapsBackward() {
    return psOverlap && psMode == SyncMode.SYNC && !batchNormSync;
  }

  /**
   * This configuration as HOCON, every key explicit.
   *
   * @return a config that {@link #load} turns back into an equal record
   */
  public Config toConfig() {
    return parse(render(), "job config");
  }

  /**
   * This configuration as HOCON text, one {@code key = value} line per key.
   *
   * @return text that {@link #parse} and {@link #load} turn back into an equal record
   */
  public String render() {
    final StringBuilder text = new StringBuilder();
    final Object[] values = {
      quote(jobName),
      quote(modelName),
      quote(dataDir),
      perChannel(dataMean),
      perChannel(dataStd),
      workers,
      epochs,
      batchSize,
      maxStepsPerEpoch,
      seed,
      Keys.lowerName(optimizer),
      learningRate,
      momentum,
      weightDecay,
      workerThreads,
      evalBatchSize,
      quote(sparkMaster),
      quote(runDir),
      Keys.lowerName(transport),
      quote(psHost),
      quote(psInterface),
      psPort,
      stepTimeout.toNanos() + "ns",
      connectTimeout.toNanos() + "ns",
      chunkBytes,
      termLengthBytes,
      Keys.lowerName(schedule),
      scheduleStepSize,
      scheduleGamma,
      scheduleMinLearningRate,
      warmupSteps,
      scaleLearningRate,
      referenceBatchSize,
      clipNorm,
      Keys.lowerName(batchNormRunningStats),
      checkpointEverySteps,
      checkpointAtEpochEnd,
      stageRetries,
      batchNormSync,
      psShards,
      quote(String.join(",", shardServers)),
      psFrameTags,
      quote(psSecretFile),
      Keys.lowerName(psMode),
      psStaleness,
      psLocalSteps,
      Keys.lowerName(psCompression),
      psTopKRatio,
      psThreshold,
      psOverlap,
      Keys.lowerName(workerEngine),
      Keys.lowerName(dataFormat),
      modelClasses,
      quote(modelPretrained),
      modelFreezeLayers,
      modelScratchBaseline,
      dataTrainSamples,
      Keys.lowerName(runProgress),
      runTimelineSteps,
      runReportImages,
      microBatch,
      Keys.lowerName(elastic)
    };
    for (int i = 0; i < values.length; i++) {
      text.append(Keys.ALL.get(i).name()).append(" = ").append(values[i]).append('\n');
    }
    return text.toString();
  }

  /** Splits and checks {@code host:port,host:port}. */
  private static List<String> shardServers(String text) {
    if (text.isBlank()) {
      return List.of();
    }
    final List<String> servers = new ArrayList<>();
    for (String part : text.split(",", -1)) {
      final String server = part.strip();
      final int colon = server.lastIndexOf(':');
      int port = -1;
      if (colon > 0) {
        try {
          port = Integer.parseInt(server.substring(colon + 1));
        } catch (NumberFormatException e) {
          port = -1;
        }
      }
      if (port < 1024 || port > 65534) {
        throw new ConfigurationException(
            Keys.PS_SHARD_SERVERS.name()
                + ": \""
                + server
                + "\" is not host:port with a port in [1024, 65534]; list one"
                + " `lockstep parameter-server` per shard, such as"
                + " 10.0.0.7:40300,10.0.0.8:40300");
      }
      servers.add(server);
    }
    return List.copyOf(servers);
  }

  /**
   * Why this job cannot go on with fewer workers than {@code lockstep.workers} after losing some
   * ({@code lockstep.train.elastic}), or null when it can: a worker then computes several slices of
   * each global batch as micro-batches, which only sync mode does with unchanged steps and which
   * SyncBatchNorm's per-slice statistics rounds do not allow.
   *
   * @return the setting that keeps the job from shrinking, and why; null when it may shrink
   */
  public String shrinkRefusal() {
    if (elastic == Elasticity.OFF) {
      return Keys.ELASTIC.name() + "=off";
    }
    if (psMode != SyncMode.SYNC) {
      return Keys.PS_MODE.name()
          + "="
          + Keys.lowerName(psMode)
          + ": only sync mode computes a lost worker's slice elsewhere with unchanged steps";
    }
    if (batchNormSync) {
      return Keys.BATCHNORM_SYNC.name()
          + "=true: SyncBatchNorm's statistics rounds need one worker per slice";
    }
    return null;
  }

  private void checkConsistency() {
    if (modelPretrained.isBlank() && (modelFreezeLayers > 0 || modelScratchBaseline)) {
      throw new ConfigurationException(
          (modelFreezeLayers > 0
                  ? Keys.MODEL_FREEZE_LAYERS.name() + "=" + modelFreezeLayers
                  : Keys.MODEL_SCRATCH_BASELINE.name() + "=true")
              + " needs a pretrained model; set "
              + Keys.MODEL_PRETRAINED.name()
              + " (--pretrained FILE: a run's model.zip, such as bin/lockstep train"
              + " fashion-mnist-lenet leaves) or remove the setting");
    }
    if (dataTrainSamples > 0 && dataFormat == DataFormat.FOLDER) {
      throw new ConfigurationException(
          Keys.DATA_TRAIN_SAMPLES.name()
              + " does not apply to "
              + Keys.DATA_FORMAT.name()
              + "=folder; make a folder with the images to train on, or set it to 0");
    }
    if (!shardServers.isEmpty() && transport != Transport.UDP) {
      throw new ConfigurationException(
          Keys.PS_SHARD_SERVERS.name()
              + " needs "
              + Keys.TRANSPORT.name()
              + "=udp: the shard processes are reached over the network");
    }
    if (shardServers.isEmpty() != psSecretFile.isBlank()) {
      throw new ConfigurationException(
          shardServers.isEmpty()
              ? Keys.PS_SECRET_FILE.name()
                  + " is for shard processes and needs "
                  + Keys.PS_SHARD_SERVERS.name()
                  + "; remove it (shards in the driver JVM use a random key per job)"
              : Keys.PS_SHARD_SERVERS.name()
                  + " needs "
                  + Keys.PS_SECRET_FILE.name()
                  + ", the secret file every shard process reads with --secret-file (make one"
                  + " with: head -c 32 /dev/urandom > F; chmod 600 F)");
    }
    if (!psHost.isEmpty() && !psInterface.isEmpty()) {
      throw new ConfigurationException(
          Keys.PS_HOST.name()
              + "="
              + psHost
              + " and "
              + Keys.PS_INTERFACE.name()
              + "="
              + psInterface
              + " both choose the server's address; set one");
    }
    if (psHost.equals("0.0.0.0") || psHost.equals("::") || psHost.equals("[::]")) {
      throw new ConfigurationException(
          Keys.PS_HOST.name()
              + "="
              + psHost
              + " would bind every interface and is no address the workers can reach; set the"
              + " driver's address on the cluster network (such as 10.0.0.5)");
    }
    if (!shardServers.isEmpty() && psFrameTags == FrameTags.OFF) {
      throw new ConfigurationException(
          Keys.PS_FRAME_TAGS.name()
              + "=off cannot be used with "
              + Keys.PS_SHARD_SERVERS.name()
              + ": shard processes always verify tags; remove it");
    }
    if (!shardServers.isEmpty() && psShards != 1) {
      throw new ConfigurationException(
          "set either "
              + Keys.PS_SHARDS.name()
              + " (shards in the driver JVM) or "
              + Keys.PS_SHARD_SERVERS.name()
              + " (shard processes), not both");
    }
    if (batchNormSync && microBatch > 0) {
      throw new ConfigurationException(
          Keys.MICRO_BATCH.name()
              + "="
              + microBatch
              + " cannot be used with "
              + Keys.BATCHNORM_SYNC.name()
              + "=true: SyncBatchNorm normalizes with the whole global batch's statistics, which"
              + " no micro-batch sees; set "
              + Keys.MICRO_BATCH.name()
              + "=0 or "
              + Keys.BATCHNORM_SYNC.name()
              + "=false");
    }
    if (batchNormSync && psMode != SyncMode.SYNC) {
      throw new ConfigurationException(
          Keys.BATCHNORM_SYNC.name()
              + "=true needs "
              + Keys.PS_MODE.name()
              + "=sync: SyncBatchNorm sums every step's statistics over the workers");
    }
    if (psMode == SyncMode.LOCAL_SGD && psCompression != Compression.NONE) {
      throw new ConfigurationException(
          Keys.PS_COMPRESSION.name()
              + "="
              + Keys.lowerName(psCompression)
              + " does not apply to "
              + Keys.PS_MODE.name()
              + "=local-sgd, which averages parameters, not gradients; set it to none");
    }
    if (batchSize < workers) {
      throw new ConfigurationException(
          Keys.BATCH_SIZE.name()
              + "="
              + batchSize
              + " must be >= "
              + Keys.WORKERS.name()
              + "="
              + workers
              + " so every worker gets samples; raise the batch or use fewer workers");
    }
    if (Long.bitCount(termLengthBytes) != 1) {
      throw new ConfigurationException(
          Keys.TERM_LENGTH_BYTES.name() + "=" + termLengthBytes + " must be a power of two");
    }
    final long largestChunk = largestChunkBytes(termLengthBytes);
    if (chunkBytes != 0
        && (chunkBytes % Float.BYTES != 0
            || chunkBytes < SMALLEST_CHUNK_BYTES
            || chunkBytes > largestChunk)) {
      throw new ConfigurationException(
          Keys.CHUNK_BYTES.name()
              + "="
              + chunkBytes
              + " must be 0 (the largest the network carries unfragmented) or a multiple of 4 from "
              + SMALLEST_CHUNK_BYTES
              + " to "
              + largestChunk
              + " with "
              + Keys.TERM_LENGTH_BYTES.name()
              + "="
              + termLengthBytes
              + " (one unfragmented Aeron frame: min(65504, term-length/8) - 96 bytes of headers)");
    }
  }

  /**
   * The largest gradient chunk that travels as one unfragmented Aeron frame: the MTU (65504 at
   * most, an eighth of the term at most) less Aeron's 32-byte frame header and Lockstep's 64-byte
   * one. The parameter server reads chunks in place in the term, so they must not be fragmented.
   *
   * @param termLengthBytes the Aeron term length
   * @return the largest chunk payload, in bytes
   */
  public static long largestChunkBytes(long termLengthBytes) {
    return Math.min(65_504L, termLengthBytes / 8) - 96;
  }

  /**
   * The largest gradient chunk whose Aeron frame fits one IPv4 datagram on a link of {@code mtu}
   * bytes, with its 20-byte IP and 8-byte UDP headers, so no datagram is IP-fragmented: 1376 bytes
   * on a 1500-byte network, 8864 on a 9000-byte one; at most {@link #largestChunkBytes}.
   *
   * @param mtu the link's MTU in bytes
   * @param termLengthBytes the Aeron term length
   * @return the chunk payload, in bytes, at least {@link #SMALLEST_CHUNK_BYTES}
   */
  public static long chunkBytesForMtu(int mtu, long termLengthBytes) {
    final long frame = (mtu - 28L) / 32 * 32;
    return Math.max(SMALLEST_CHUNK_BYTES, Math.min(frame - 96, largestChunkBytes(termLengthBytes)));
  }

  /** One value as a number, several as a list: files written before lists stay as they were. */
  private static Object perChannel(List<Double> values) {
    return values.size() == 1 ? values.get(0) : values;
  }

  private static String quote(String s) {
    return ConfigFactory.empty()
        .withValue("v", ConfigValueFactory.fromAnyRef(s))
        .getValue("v")
        .render(com.typesafe.config.ConfigRenderOptions.concise());
  }

  private static Config defaults() {
    final StringBuilder text = new StringBuilder();
    for (ConfigKey<?> key : Keys.ALL) {
      text.append(key.name()).append(" = ").append(key.defaultValue()).append('\n');
    }
    return ConfigFactory.parseString(text.toString());
  }

  private static void rejectUnknownKeys(Config config) {
    final Set<String> known =
        Keys.ALL.stream().map(ConfigKey::name).collect(Collectors.toCollection(TreeSet::new));
    for (Map.Entry<String, ?> entry : config.entrySet()) {
      final String key = entry.getKey();
      if (!known.contains(key)) {
        throw new ConfigurationException(
            "unknown configuration key "
                + key
                + (key.startsWith(ROOT + ".") ? "" : " (every key starts with lockstep.)")
                + "; `bin/lockstep config` lists the keys");
      }
    }
  }
}
