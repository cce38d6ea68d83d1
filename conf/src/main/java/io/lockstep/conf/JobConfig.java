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
import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * The immutable, validated configuration of one training job: one value for every key of {@link
 * Keys}, read with {@link #get}. The driver builds it once and ships it to every executor, so it
 * holds only plain values.
 */
public final class JobConfig implements Serializable {
  private static final long serialVersionUID = 2L;

  /** The smallest gradient chunk: a 1280-byte link (IPv6's minimum MTU) carries it whole. */
  public static final long SMALLEST_CHUNK_BYTES = 1024;

  /**
   * Aeron's largest frame, {@code io.aeron.driver.Configuration.MAX_UDP_PAYLOAD_LENGTH}. The
   * configuration sits below Aeron, so the protocol's {@code FrameSizesTest} holds this and the
   * header lengths below to Aeron's own and to the frame's.
   */
  public static final int AERON_MAX_FRAME_BYTES = 65_504;

  /** Aeron's data frame header, {@code io.aeron.protocol.DataHeaderFlyweight.HEADER_LENGTH}. */
  public static final int AERON_HEADER_BYTES = 32;

  /** Lockstep's frame header, {@code io.lockstep.protocol.Frame.HEADER_LENGTH}. */
  public static final int FRAME_HEADER_BYTES = 64;

  /** Aeron's frame alignment, {@code io.aeron.logbuffer.FrameDescriptor.FRAME_ALIGNMENT}. */
  public static final int AERON_FRAME_ALIGNMENT = 32;

  /** An IPv4 datagram's headers around a frame: IP's 20 bytes and UDP's 8. */
  private static final int DATAGRAM_HEADER_BYTES = 28;

  private static final String ROOT = "lockstep";

  /** One value per key, in the order of {@link Keys#all()}. */
  private final Object[] values;

  private JobConfig(Object[] values) {
    this.values = values;
  }

  /**
   * The value of one key.
   *
   * @param key a key of {@link Keys}
   * @param <T> the key's type
   * @return its value in this job
   */
  @SuppressWarnings("unchecked")
  public <T> T get(ConfigKey<T> key) {
    return (T) values[key.index()];
  }

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
    final Object[] values = new Object[Keys.ALL.size()];
    for (ConfigKey<?> key : Keys.ALL) {
      values[key.index()] = key.read(config);
    }
    final JobConfig job = new JobConfig(values);
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
    final int full = (samples + get(Keys.BATCH_SIZE) - 1) / get(Keys.BATCH_SIZE);
    return get(Keys.MAX_STEPS) == 0 ? full : Math.min(full, get(Keys.MAX_STEPS));
  }

  /**
   * The learning rate the schedule starts from: the configured one (or the optimizer's usual one
   * when it is 0), times batch-size / reference-batch-size when the linear scaling rule is on.
   *
   * @return the base learning rate
   */
  public double baseLearningRate() {
    final double rate =
        get(Keys.LEARNING_RATE) > 0
            ? get(Keys.LEARNING_RATE)
            : get(Keys.OPTIMIZER).usualLearningRate();
    return get(Keys.SCALE_LEARNING_RATE)
        ? rate * get(Keys.BATCH_SIZE) / get(Keys.REFERENCE_BATCH_SIZE)
        : rate;
  }

  /**
   * Whether workers send the gradient while the backward pass runs: asked for, in sync mode (the
   * other modes send what the optimizer makes of the whole gradient), and without SyncBatchNorm,
   * whose statistics rounds run inside the backward pass and must not interleave with the chunks.
   *
   * @return whether synchronous steps overlap transfer and backward pass
   */
  public boolean overlapsBackward() {
    return get(Keys.PS_OVERLAP) && get(Keys.PS_MODE) == SyncMode.SYNC && !get(Keys.BATCHNORM_SYNC);
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
    for (ConfigKey<?> key : Keys.ALL) {
      text.append(key.name()).append(" = ").append(key.write(values[key.index()])).append('\n');
    }
    return text.toString();
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof JobConfig job && Arrays.equals(values, job.values);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(values);
  }

  @Override
  public String toString() {
    return render();
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
    if (get(Keys.ELASTIC) == Elasticity.OFF) {
      return Keys.ELASTIC.name() + "=off";
    }
    if (get(Keys.PS_MODE) != SyncMode.SYNC) {
      return Keys.PS_MODE.name()
          + "="
          + Keys.lowerName(get(Keys.PS_MODE))
          + ": only sync mode computes a lost worker's slice elsewhere with unchanged steps";
    }
    if (get(Keys.BATCHNORM_SYNC)) {
      return Keys.BATCHNORM_SYNC.name()
          + "=true: SyncBatchNorm's statistics rounds need one worker per slice";
    }
    return null;
  }

  private void checkConsistency() {
    if (get(Keys.MODEL_PRETRAINED).isBlank()
        && (get(Keys.MODEL_FREEZE_LAYERS) > 0 || get(Keys.MODEL_SCRATCH_BASELINE))) {
      throw new ConfigurationException(
          (get(Keys.MODEL_FREEZE_LAYERS) > 0
                  ? Keys.MODEL_FREEZE_LAYERS.name() + "=" + get(Keys.MODEL_FREEZE_LAYERS)
                  : Keys.MODEL_SCRATCH_BASELINE.name() + "=true")
              + " needs a pretrained model; set "
              + Keys.MODEL_PRETRAINED.name()
              + " (--pretrained FILE: a run's model.zip, such as bin/lockstep train"
              + " fashion-mnist-lenet leaves) or remove the setting");
    }
    if (get(Keys.DATA_TRAIN_SAMPLES) > 0 && get(Keys.DATA_FORMAT) == DataFormat.FOLDER) {
      throw new ConfigurationException(
          Keys.DATA_TRAIN_SAMPLES.name()
              + " does not apply to "
              + Keys.DATA_FORMAT.name()
              + "=folder; make a folder with the images to train on, or set it to 0");
    }
    if (!get(Keys.PS_SHARD_SERVERS).isEmpty() && get(Keys.TRANSPORT) != Transport.UDP) {
      throw new ConfigurationException(
          Keys.PS_SHARD_SERVERS.name()
              + " needs "
              + Keys.TRANSPORT.name()
              + "=udp: the shard processes are reached over the network");
    }
    if (get(Keys.PS_SHARD_SERVERS).isEmpty() != get(Keys.PS_SECRET_FILE).isBlank()) {
      throw new ConfigurationException(
          get(Keys.PS_SHARD_SERVERS).isEmpty()
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
    if (!get(Keys.PS_HOST).isEmpty() && !get(Keys.PS_INTERFACE).isEmpty()) {
      throw new ConfigurationException(
          Keys.PS_HOST.name()
              + "="
              + get(Keys.PS_HOST)
              + " and "
              + Keys.PS_INTERFACE.name()
              + "="
              + get(Keys.PS_INTERFACE)
              + " both choose the server's address; set one");
    }
    if (get(Keys.PS_HOST).equals("0.0.0.0")
        || get(Keys.PS_HOST).equals("::")
        || get(Keys.PS_HOST).equals("[::]")) {
      throw new ConfigurationException(
          Keys.PS_HOST.name()
              + "="
              + get(Keys.PS_HOST)
              + " would bind every interface and is no address the workers can reach; set the"
              + " driver's address on the cluster network (such as 10.0.0.5)");
    }
    if (!get(Keys.PS_SHARD_SERVERS).isEmpty() && get(Keys.PS_FRAME_TAGS) == FrameTags.OFF) {
      throw new ConfigurationException(
          Keys.PS_FRAME_TAGS.name()
              + "=off cannot be used with "
              + Keys.PS_SHARD_SERVERS.name()
              + ": shard processes always verify tags; remove it");
    }
    if (!get(Keys.PS_SHARD_SERVERS).isEmpty() && get(Keys.PS_SHARDS) != 1) {
      throw new ConfigurationException(
          "set either "
              + Keys.PS_SHARDS.name()
              + " (shards in the driver JVM) or "
              + Keys.PS_SHARD_SERVERS.name()
              + " (shard processes), not both");
    }
    if (get(Keys.BATCHNORM_SYNC) && get(Keys.MICRO_BATCH) > 0) {
      throw new ConfigurationException(
          Keys.MICRO_BATCH.name()
              + "="
              + get(Keys.MICRO_BATCH)
              + " cannot be used with "
              + Keys.BATCHNORM_SYNC.name()
              + "=true: SyncBatchNorm normalizes with the whole global batch's statistics, which"
              + " no micro-batch sees; set "
              + Keys.MICRO_BATCH.name()
              + "=0 or "
              + Keys.BATCHNORM_SYNC.name()
              + "=false");
    }
    if (get(Keys.BATCHNORM_SYNC) && get(Keys.PS_MODE) != SyncMode.SYNC) {
      throw new ConfigurationException(
          Keys.BATCHNORM_SYNC.name()
              + "=true needs "
              + Keys.PS_MODE.name()
              + "=sync: SyncBatchNorm sums every step's statistics over the workers");
    }
    if (get(Keys.PS_MODE) == SyncMode.LOCAL_SGD && get(Keys.PS_COMPRESSION) != Compression.NONE) {
      throw new ConfigurationException(
          Keys.PS_COMPRESSION.name()
              + "="
              + Keys.lowerName(get(Keys.PS_COMPRESSION))
              + " does not apply to "
              + Keys.PS_MODE.name()
              + "=local-sgd, which averages parameters, not gradients; set it to none");
    }
    if (get(Keys.BATCH_SIZE) < get(Keys.WORKERS)) {
      throw new ConfigurationException(
          Keys.BATCH_SIZE.name()
              + "="
              + get(Keys.BATCH_SIZE)
              + " must be >= "
              + Keys.WORKERS.name()
              + "="
              + get(Keys.WORKERS)
              + " so every worker gets samples; raise the batch or use fewer workers");
    }
    if (Long.bitCount(get(Keys.PS_TERM_LENGTH)) != 1) {
      throw new ConfigurationException(
          Keys.PS_TERM_LENGTH.name() + "=" + get(Keys.PS_TERM_LENGTH) + " must be a power of two");
    }
    final long largestChunk = largestChunkBytes(get(Keys.PS_TERM_LENGTH));
    if (get(Keys.PS_CHUNK_SIZE) != 0
        && (get(Keys.PS_CHUNK_SIZE) % Float.BYTES != 0
            || get(Keys.PS_CHUNK_SIZE) < SMALLEST_CHUNK_BYTES
            || get(Keys.PS_CHUNK_SIZE) > largestChunk)) {
      throw new ConfigurationException(
          Keys.PS_CHUNK_SIZE.name()
              + "="
              + get(Keys.PS_CHUNK_SIZE)
              + " must be 0 (the largest the network carries unfragmented) or a multiple of 4 from "
              + SMALLEST_CHUNK_BYTES
              + " to "
              + largestChunk
              + " with "
              + Keys.PS_TERM_LENGTH.name()
              + "="
              + get(Keys.PS_TERM_LENGTH)
              + " (one unfragmented Aeron frame: min("
              + AERON_MAX_FRAME_BYTES
              + ", term-length/8) - "
              + (AERON_HEADER_BYTES + FRAME_HEADER_BYTES)
              + " bytes of headers)");
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
    return Math.min(AERON_MAX_FRAME_BYTES, termLengthBytes / 8)
        - AERON_HEADER_BYTES
        - FRAME_HEADER_BYTES;
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
    final long frame =
        (mtu - (long) DATAGRAM_HEADER_BYTES) / AERON_FRAME_ALIGNMENT * AERON_FRAME_ALIGNMENT;
    return Math.max(
        SMALLEST_CHUNK_BYTES,
        Math.min(
            frame - AERON_HEADER_BYTES - FRAME_HEADER_BYTES, largestChunkBytes(termLengthBytes)));
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
