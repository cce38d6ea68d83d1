package io.lockstep.conf;

import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import com.typesafe.config.Config;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JobConfigTest {

  private static Config job(String text) {
    return JobConfig.parse(text, "job");
  }

  private static ConfigurationException rejected(Config... layers) {
    return assertThrows(ConfigurationException.class, () -> JobConfig.load(layers));
  }

  private static void assertMentions(String message, String... parts) {
    for (String part : parts) {
      assertTrue(message.contains(part), () -> "'" + message + "' should mention '" + part + "'");
    }
  }

  @Test
  void shouldLoadDeclaredDefaultsWhenNoLayerIsGiven() {
    final JobConfig job = JobConfig.load();

    assertAll(
        () -> assertEquals(2, job.get(Keys.WORKERS)),
        () -> assertEquals(128, job.get(Keys.BATCH_SIZE)),
        () -> assertEquals(Optimizer.MOMENTUM, job.get(Keys.OPTIMIZER)),
        () -> assertEquals(0, job.get(Keys.MAX_STEPS)),
        () -> assertEquals(Transport.IPC, job.get(Keys.TRANSPORT)),
        () -> assertEquals(Duration.ofSeconds(120), job.get(Keys.STEP_TIMEOUT)),
        () -> assertEquals(0L, job.get(Keys.PS_CHUNK_SIZE)),
        () -> assertEquals(1L << 20, job.get(Keys.PS_TERM_LENGTH)),
        () -> assertEquals("/usr/share/datasets/fashion-mnist", job.get(Keys.DATA_DIR)));
  }

  @Test
  void shouldLetLaterLayersOverrideEarlierOnes() {
    final JobConfig job =
        JobConfig.load(
            job("lockstep.train.workers = 3\nlockstep.train.epochs = 5"),
            JobConfig.overrides(Map.of("lockstep.train.workers", "4")));

    assertEquals(4, job.get(Keys.WORKERS));
    assertEquals(
        5, job.get(Keys.EPOCHS), "a key the later layer leaves alone keeps the earlier value");
  }

  @Test
  void shouldRejectUnknownKeyNamingIt() {
    final ConfigurationException e = rejected(job("lockstep.train.wokers = 3"));

    assertMentions(e.getMessage(), "lockstep.train.wokers");
  }

  @Test
  void shouldRejectUnknownOverrideKeyNamingIt() {
    final ConfigurationException e =
        rejected(JobConfig.overrides(Map.of("lockstep.train.wokers", "3")));

    assertMentions(e.getMessage(), "lockstep.train.wokers");
  }

  @Test
  void shouldRejectMalformedValueNamingKeyValueAndRange() {
    final ConfigurationException e = rejected(job("lockstep.train.workers=abc"));

    assertMentions(e.getMessage(), "lockstep.train.workers", "abc", "[1, 4096]");
  }

  @Test
  void shouldRejectMalformedOverrideValueNamingKeyValueAndRange() {
    final ConfigurationException e =
        rejected(JobConfig.overrides(Map.of("lockstep.train.workers", "abc")));

    assertMentions(e.getMessage(), "lockstep.train.workers", "abc", "[1, 4096]");
  }

  @Test
  void shouldRejectOutOfRangeValueNamingKeyValueAndRange() {
    final ConfigurationException e = rejected(job("lockstep.train.workers=0"));

    assertMentions(e.getMessage(), "lockstep.train.workers=0", "[1, 4096]");
  }

  @Test
  void shouldRejectOutOfRangeOverrideValueNamingKeyValueAndRange() {
    final ConfigurationException e =
        rejected(JobConfig.overrides(Map.of("lockstep.train.workers", "0")));

    assertMentions(e.getMessage(), "lockstep.train.workers", "0", "[1, 4096]");
  }

  @Test
  void shouldRejectUnknownOptimizerListingAllowedValues() {
    final ConfigurationException e = rejected(job("lockstep.optimizer.name = adamw"));

    assertMentions(
        e.getMessage(),
        "lockstep.optimizer.name",
        "adamw",
        "sgd|momentum|nesterov|adam|adagrad|rmsprop");
  }

  @Test
  void shouldReadOptimizerNameCaseInsensitively() {
    assertEquals(
        Optimizer.NESTEROV,
        JobConfig.load(job("lockstep.optimizer.name = Nesterov")).get(Keys.OPTIMIZER));
  }

  @Test
  void shouldRejectBatchSmallerThanWorkersNamingBothKeys() {
    final ConfigurationException e =
        rejected(job("lockstep.train.workers = 8\nlockstep.train.batch-size = 4"));

    assertMentions(e.getMessage(), "lockstep.train.batch-size=4", "lockstep.train.workers=8");
  }

  @Test
  void shouldAcceptBatchEqualToWorkers() {
    final JobConfig job =
        JobConfig.load(job("lockstep.train.workers = 8\nlockstep.train.batch-size = 8"));

    assertEquals(8, job.get(Keys.BATCH_SIZE));
  }

  @Test
  void shouldRejectChunkLargerThanTermLengthOverEight() {
    final ConfigurationException e =
        rejected(job("lockstep.ps.term-length = 64KiB\nlockstep.ps.chunk-size = 16KiB"));

    assertMentions(e.getMessage(), "lockstep.ps.chunk-size=16384", "lockstep.ps.term-length");
  }

  @Test
  void shouldAcceptLargestChunkThatFitsInOneAeronMessage() {
    final long term = 64L << 10;
    final long largest = term / 8 - 96;

    final JobConfig job =
        JobConfig.load(
            job("lockstep.ps.term-length = " + term + "\nlockstep.ps.chunk-size = " + largest));
    assertEquals(largest, job.get(Keys.PS_CHUNK_SIZE));

    rejected(
        job("lockstep.ps.term-length = " + term + "\nlockstep.ps.chunk-size = " + (largest + 4)));
  }

  @Test
  void shouldReadShardServersAndRejectWhatCannotWork() {
    final JobConfig job =
        JobConfig.load(
            job(
                "lockstep.ps.transport = udp\n"
                    + "lockstep.ps.secret-file = /etc/lockstep/secret\n"
                    + "lockstep.ps.shard-servers = \"10.0.0.7:40300, 10.0.0.8:40302\""));
    assertEquals(List.of("10.0.0.7:40300", "10.0.0.8:40302"), job.get(Keys.PS_SHARD_SERVERS));
    assertEquals("/etc/lockstep/secret", job.get(Keys.PS_SECRET_FILE));
    assertEquals(FrameTags.NETWORK, job.get(Keys.PS_FRAME_TAGS));
    assertEquals(1, JobConfig.load(job("")).get(Keys.PS_SHARDS));
    assertEquals(List.of(), JobConfig.load(job("")).get(Keys.PS_SHARD_SERVERS));

    assertMentions(
        rejected(job("lockstep.ps.transport = udp\nlockstep.ps.shard-servers = \"10.0.0.7\""))
            .getMessage(),
        "lockstep.ps.shard-servers",
        "\"10.0.0.7\" is not host:port");
    assertMentions(
        rejected(job("lockstep.ps.shard-servers = \"10.0.0.7:40300\"")).getMessage(),
        "lockstep.ps.transport=udp");
    assertMentions(
        rejected(
                job(
                    "lockstep.ps.transport = udp\nlockstep.ps.shards = 2\n"
                        + "lockstep.ps.secret-file = s\n"
                        + "lockstep.ps.shard-servers = \"a:40300,b:40300\""))
            .getMessage(),
        "not both");
    assertMentions(
        rejected(job("lockstep.ps.transport = udp\nlockstep.ps.shard-servers = \"a:40300\""))
            .getMessage(),
        "lockstep.ps.shard-servers needs lockstep.ps.secret-file",
        "head -c 32 /dev/urandom");
    assertMentions(
        rejected(job("lockstep.ps.secret-file = s")).getMessage(),
        "lockstep.ps.secret-file is for shard processes");
    assertMentions(
        rejected(
                job(
                    "lockstep.ps.transport = udp\nlockstep.ps.frame-tags = off\n"
                        + "lockstep.ps.secret-file = s\n"
                        + "lockstep.ps.shard-servers = \"a:40300\""))
            .getMessage(),
        "lockstep.ps.frame-tags=off cannot be used");
    assertEquals(
        FrameTags.OFF, JobConfig.load(job("lockstep.ps.frame-tags = off")).get(Keys.PS_FRAME_TAGS));
    assertEquals(
        FrameTags.ALWAYS,
        JobConfig.load(job("lockstep.ps.frame-tags = always")).get(Keys.PS_FRAME_TAGS));
    assertMentions(
        rejected(job("lockstep.ps.frame-tags = false")).getMessage(),
        "lockstep.ps.frame-tags",
        "network|always|off");
    assertMentions(
        rejected(job("lockstep.ps.host = \"0.0.0.0\"")).getMessage(),
        "lockstep.ps.host=0.0.0.0 would bind every interface");
    assertMentions(rejected(job("lockstep.ps.shards = 0")).getMessage(), "lockstep.ps.shards=0");
    assertMentions(
        rejected(job("lockstep.train.micro-batch = 8\nlockstep.batchnorm.sync = true"))
            .getMessage(),
        "lockstep.train.micro-batch=8 cannot be used with lockstep.batchnorm.sync=true",
        "no micro-batch sees");
    assertMentions(
        rejected(job("lockstep.train.micro-batch = -1")).getMessage(),
        "lockstep.train.micro-batch");
    assertEquals(40, JobConfig.load(job("lockstep.train.micro-batch = 40")).get(Keys.MICRO_BATCH));
  }

  @Test
  void shouldRejectChunkThatIsNotWholeFloats() {
    final ConfigurationException e = rejected(job("lockstep.ps.chunk-size = 4098"));

    assertMentions(e.getMessage(), "lockstep.ps.chunk-size=4098", "multiple of 4");
  }

  @Test
  void shouldRejectChunkTooSmallForItsHeaders() {
    final ConfigurationException e = rejected(job("lockstep.ps.chunk-size = 512"));

    assertMentions(e.getMessage(), "lockstep.ps.chunk-size=512", "0 (the largest", "from 1024");
  }

  /** A datagram of the link's MTU holds the IP and UDP headers, Aeron's and Lockstep's, a chunk. */
  @Test
  void shouldFitChunksToTheLinksMtu() {
    final long term = 1 << 20;
    assertEquals(1376, JobConfig.chunkBytesForMtu(1500, term));
    assertEquals(8864, JobConfig.chunkBytesForMtu(9000, term));
    assertEquals(65_408, JobConfig.chunkBytesForMtu(65_536, term), "loopback");
    assertEquals(8096, JobConfig.chunkBytesForMtu(65_536, 64 << 10), "an eighth of the term");
    assertEquals(1152, JobConfig.chunkBytesForMtu(1280, term), "IPv6's minimum link");
    for (int mtu : new int[] {1280, 1500, 4000, 9000}) {
      final long chunk = JobConfig.chunkBytesForMtu(mtu, term);
      assertEquals(0, chunk % 4);
      final long frame = (chunk + 96 + 31) / 32 * 32; // Aeron's aligned frame, headers included
      assertTrue(frame + 28 <= mtu, "MTU " + mtu + ": a " + (frame + 28) + "-byte datagram");
    }
  }

  @Test
  void shouldRejectTermLengthThatIsNotPowerOfTwo() {
    final ConfigurationException e = rejected(job("lockstep.ps.term-length = 100000"));

    assertMentions(e.getMessage(), "lockstep.ps.term-length=100000", "power of two");
  }

  @Test
  void shouldRejectZeroDuration() {
    final ConfigurationException e = rejected(job("lockstep.ps.step-timeout = 0s"));

    assertMentions(e.getMessage(), "lockstep.ps.step-timeout", "> 0");
  }

  @Test
  void shouldPassPathWithSchemeAndPortThroughOverridesIntact() {
    final JobConfig job =
        JobConfig.load(JobConfig.overrides(Map.of("lockstep.data.dir", "hdfs://nn:8020/data")));

    assertEquals("hdfs://nn:8020/data", job.get(Keys.DATA_DIR));
  }

  @Test
  void shouldTakeOverrideValuesLiterallyNotAsHocon() {
    final JobConfig job =
        JobConfig.load(
            JobConfig.overrides(
                Map.of(
                    "lockstep.run.dir", "runs/a # not a comment, ${HOME}",
                    "lockstep.ps.step-timeout", "2m",
                    "lockstep.ps.chunk-size", "32KiB")));

    assertEquals("runs/a # not a comment, ${HOME}", job.get(Keys.RUN_DIR));
    assertEquals(Duration.ofMinutes(2), job.get(Keys.STEP_TIMEOUT));
    assertEquals(32L << 10, job.get(Keys.PS_CHUNK_SIZE));
  }

  @Test
  void shouldRejectOverrideKeyThatIsNotAPath() {
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class,
            () -> JobConfig.overrides(Map.of("lockstep..workers", "3")));

    assertMentions(e.getMessage(), "lockstep..workers");
  }

  @Test
  void shouldRejectInvalidHoconNamingItsOrigin() {
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class, () -> JobConfig.parse("lockstep { train", "jobs/x.conf"));

    assertMentions(e.getMessage(), "jobs/x.conf");
  }

  @Test
  void shouldReadNormalizationAsOneNumberOrOnePerChannel() {
    assertEquals(List.of(0.286), JobConfig.load().get(Keys.DATA_MEAN));
    final JobConfig perChannel =
        JobConfig.load(
            JobConfig.overrides(
                Map.of("lockstep.data.mean", "[0.485,0.456, 0.406]", "lockstep.data.std", "0.5")));
    assertEquals(List.of(0.485, 0.456, 0.406), perChannel.get(Keys.DATA_MEAN));
    assertEquals(List.of(0.5), perChannel.get(Keys.DATA_STD));
    assertEquals(perChannel, JobConfig.load(perChannel.toConfig()));
    assertMentions(
        rejected(JobConfig.overrides(Map.of("lockstep.data.std", "[0.2, 0, 0.2]"))).getMessage(),
        "lockstep.data.std",
        "> 0");
    assertMentions(
        rejected(JobConfig.overrides(Map.of("lockstep.data.mean", "[0.5, x]"))).getMessage(),
        "lockstep.data.mean");
    assertMentions(
        rejected(JobConfig.overrides(Map.of("lockstep.data.mean", "0.1,0.2,0.3,0.4,0.5")))
            .getMessage(),
        "lockstep.data.mean",
        "at most 4");
  }

  @Test
  void shouldRoundTripDefaultsThroughToConfig() {
    final JobConfig job = JobConfig.load();

    assertEquals(job, JobConfig.load(job.toConfig()));
  }

  @Test
  void shouldRoundTripEveryKeyThroughToConfig() {
    final Map<String, String> values = new LinkedHashMap<>();
    values.put("lockstep.job.name", "my \"quoted\" job");
    values.put("lockstep.model.name", "mlp");
    values.put("lockstep.data.dir", "hdfs://nn:8020/data");
    values.put("lockstep.data.mean", "0.1307");
    values.put("lockstep.data.std", "[0.229, 0.224, 0.225]");
    values.put("lockstep.train.workers", "3");
    values.put("lockstep.train.epochs", "7");
    values.put("lockstep.train.batch-size", "96");
    values.put("lockstep.train.max-steps", "11");
    values.put("lockstep.train.seed", "-42");
    values.put("lockstep.optimizer.name", "adam");
    values.put("lockstep.optimizer.learning-rate", "1e-4");
    values.put("lockstep.optimizer.momentum", "0.5");
    values.put("lockstep.optimizer.weight-decay", "0.0005");
    values.put("lockstep.worker.threads", "4");
    values.put("lockstep.eval.batch-size", "500");
    values.put("lockstep.spark.master", "spark://host:7077");
    values.put("lockstep.run.dir", "/tmp/run ${x}");
    values.put("lockstep.ps.transport", "udp");
    values.put("lockstep.ps.host", "10.0.0.5");
    values.put("lockstep.ps.port", "40200");
    values.put("lockstep.ps.step-timeout", "1500ms");
    values.put("lockstep.ps.connect-timeout", "3m");
    values.put("lockstep.ps.chunk-size", "32KiB");
    values.put("lockstep.ps.term-length", "4MiB");
    values.put("lockstep.ps.shard-servers", "h1:40300,h2:40300");
    values.put("lockstep.ps.secret-file", "/etc/lockstep/secret ${y}");
    values.put("lockstep.ps.mode", "stale-sync");
    values.put("lockstep.ps.staleness", "5");
    values.put("lockstep.ps.local-steps", "9");
    values.put("lockstep.ps.compression", "top-k");
    values.put("lockstep.ps.top-k-ratio", "0.002");
    values.put("lockstep.ps.threshold", "0.25");
    final JobConfig job = JobConfig.load(JobConfig.overrides(values));

    final JobConfig again = JobConfig.load(job.toConfig());

    assertEquals(job, again);
    assertAll(
        () -> assertEquals("my \"quoted\" job", again.get(Keys.JOB_NAME)),
        () -> assertEquals(-42L, again.get(Keys.SEED)),
        () -> assertEquals(1e-4, again.get(Keys.LEARNING_RATE)),
        () -> assertEquals(Optimizer.ADAM, again.get(Keys.OPTIMIZER)),
        () -> assertEquals(Transport.UDP, again.get(Keys.TRANSPORT)),
        () -> assertEquals(Duration.ofMillis(1500), again.get(Keys.STEP_TIMEOUT)),
        () -> assertEquals(4L << 20, again.get(Keys.PS_TERM_LENGTH)),
        () -> assertEquals("/tmp/run ${x}", again.get(Keys.RUN_DIR)),
        () -> assertEquals("/etc/lockstep/secret ${y}", again.get(Keys.PS_SECRET_FILE)),
        () -> assertEquals(SyncMode.STALE_SYNC, again.get(Keys.PS_MODE)),
        () -> assertEquals(5, again.get(Keys.PS_STALENESS)),
        () -> assertEquals(9, again.get(Keys.PS_LOCAL_STEPS)),
        () -> assertEquals(Compression.TOP_K, again.get(Keys.PS_COMPRESSION)),
        () -> assertEquals(0.002, again.get(Keys.PS_TOP_K_RATIO)),
        () -> assertEquals(0.25, again.get(Keys.PS_THRESHOLD)));
    assertNotEquals(JobConfig.load(), job);
  }

  @Test
  void shouldDefaultToExactSynchronousFloat32() {
    final JobConfig job = JobConfig.load();
    assertEquals(SyncMode.SYNC, job.get(Keys.PS_MODE));
    assertEquals(Compression.NONE, job.get(Keys.PS_COMPRESSION));
  }

  @Test
  void shouldRejectBadModeValuesAndImpossibleCombinationsNamingTheKeys() {
    assertMentions(
        rejected(job("lockstep.ps.mode = downpour")).getMessage(),
        "lockstep.ps.mode",
        "sync|async|stale-sync|local-sgd");
    assertMentions(
        rejected(job("lockstep.ps.compression = int8")).getMessage(),
        "lockstep.ps.compression",
        "none|fp16|bf16|top-k|threshold");
    assertMentions(
        rejected(job("lockstep.ps.top-k-ratio = 1.5")).getMessage(), "lockstep.ps.top-k-ratio");
    assertMentions(
        rejected(job("lockstep.ps.threshold = 0")).getMessage(), "lockstep.ps.threshold");
    assertMentions(
        rejected(job("lockstep.ps.local-steps = 0")).getMessage(), "lockstep.ps.local-steps");
    assertMentions(
        rejected(job("lockstep.ps.mode = local-sgd\nlockstep.ps.compression = fp16")).getMessage(),
        "lockstep.ps.compression",
        "local-sgd",
        "none");
    assertMentions(
        rejected(job("lockstep.ps.mode = async\nlockstep.batchnorm.sync = true")).getMessage(),
        "lockstep.batchnorm.sync",
        "lockstep.ps.mode=sync");
  }

  @Test
  void shouldReplaceNamedKeysWithWith() {
    final JobConfig job = JobConfig.load(job("lockstep.train.epochs = 3"));

    final JobConfig changed = job.with(Map.of("lockstep.train.batch-size", "64"));

    assertEquals(64, changed.get(Keys.BATCH_SIZE));
    assertEquals(3, changed.get(Keys.EPOCHS));
  }

  @Test
  void shouldCountStepsPerEpochRoundingUp() {
    assertEquals(469, JobConfig.load().stepsPerEpoch(60_000));
    assertEquals(1, JobConfig.load().stepsPerEpoch(128));
    assertEquals(2, JobConfig.load().stepsPerEpoch(129));
  }

  @Test
  void shouldCapStepsPerEpochAtMaxSteps() {
    final JobConfig capped = JobConfig.load(job("lockstep.train.max-steps = 20"));

    assertEquals(20, capped.stepsPerEpoch(60_000));
    assertEquals(3, capped.stepsPerEpoch(300), "a cap above the epoch's steps changes nothing");
  }

  /** The one line refusing a job file: its path, then what is wrong. */
  private static String refusedFile(Path file) {
    final ConfigurationException e =
        assertThrows(ConfigurationException.class, () -> JobConfig.read(file));
    assertTrue(e.getMessage().startsWith(file + ": "), e.getMessage());
    assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    return e.getMessage();
  }

  @Test
  void shouldReadAJobFile(@TempDir Path dir) throws IOException {
    final Path file =
        Files.writeString(dir.resolve("job.conf"), "# three epochs\nlockstep.train.epochs = 3\n");

    assertEquals(3, JobConfig.load(JobConfig.read(file)).get(Keys.EPOCHS));
  }

  @Test
  void shouldNameWhatIsWrongWithADamagedJobFile(@TempDir Path dir) throws IOException {
    assertMentions(refusedFile(dir.resolve("none.conf")), ": no such job file");
    assertMentions(
        refusedFile(Files.createDirectories(dir.resolve("folder.conf"))),
        ": a folder, not a job file");
    assertMentions(
        refusedFile(Files.write(dir.resolve("empty.conf"), new byte[0])),
        ": empty (0 bytes)",
        "lockstep config");
    assertMentions(
        refusedFile(Files.writeString(dir.resolve("comments.conf"), "# nothing set\n\n")),
        ": sets no key");
    assertMentions(
        refusedFile(
            Files.write(
                dir.resolve("photo.conf"),
                new byte[] {'#', ' ', (byte) 0xff, (byte) 0xd8, (byte) 0xff, (byte) 0xe0})),
        ": byte 2 (0xff) is not UTF-8 text");
    final Path truncated =
        Files.writeString(
            dir.resolve("truncated.conf"),
            "lockstep {\n  train {\n    epochs = 3\n",
            StandardCharsets.UTF_8);
    assertMentions(refusedFile(truncated), truncated + ": 4: ", "end of file", "truncated?");
  }

  @Test
  void shouldNameAJobFileItMayNotRead(@TempDir Path dir) throws IOException {
    assumeFalse("root".equals(System.getProperty("user.name")), "root reads any file");
    final Path file = Files.writeString(dir.resolve("locked.conf"), "lockstep.train.epochs = 3");
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("---------"));

    assertMentions(refusedFile(file), ": cannot read (permission denied)");
  }
}
