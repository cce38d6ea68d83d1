package io.lockstep.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The GPU check's bundle, built as {@code bench/gpu-check.sh bundle} builds it for a GPU machine
 * without Java, and run here without a GPU: it fits what travels (64 MiB), and it stops at the
 * first CUDA call with one line naming what it looked for.
 */
class GpuCheckBundleIT {
  private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();
  private static final long TRAVELS = 64L << 20;

  @TempDir Path scratch;

  @Test
  void shouldPackTheCheckSmallEnoughToTravelAndStopAtTheFirstCudaCallWithoutAGpu()
      throws Exception {
    final Path bundle = scratch.resolve("bundle");
    final Result built =
        run(List.of("bench/gpu-check.sh", "bundle", bundle.toString()), Map.of(), 600);
    assertEquals(0, built.code(), built.output());
    assertTrue(built.output().contains("gpu-check: bundle " + bundle), built.output());
    for (String file : List.of("jre.tar.xz", "gpu_check.py", "gpu-check.sh")) {
      assertTrue(Files.isRegularFile(bundle.resolve(file)), file);
    }
    try (Stream<Path> jars = Files.list(bundle.resolve("lib"))) {
      final List<String> names = jars.map(p -> p.getFileName().toString()).toList();
      assertTrue(names.stream().anyMatch(n -> n.startsWith("lockstep-cuda-")), names.toString());
      assertTrue(names.stream().anyMatch(n -> n.startsWith("jna-")), names.toString());
      assertTrue(names.stream().anyMatch(n -> n.startsWith("aeron-driver-")), names.toString());
      assertFalse(
          names.stream().anyMatch(n -> n.startsWith("nd4j")), "ND4J does not travel: " + names);
    }
    final long size = size(bundle);
    assertTrue(size < TRAVELS, "the bundle is " + size + " bytes");

    assumeFalse(
        Files.exists(Path.of("/usr/lib/x86_64-linux-gnu/libcuda.so.1"))
            || Files.exists(Path.of("/usr/local/nvidia/lib64/libcuda.so.1")),
        "this machine has a CUDA driver: the check would run, not stop");
    final Path temporary = Files.createDirectories(scratch.resolve("tmp"));
    final Result ran =
        run(
            List.of("bash", bundle.resolve("gpu-check.sh").toString(), "run", bundle.toString()),
            Map.of("TMPDIR", temporary.toString()),
            120);
    assertNotEquals(0, ran.code(), ran.output());
    assertTrue(
        ran.output()
            .contains("gpu-check: the CUDA driver was not found: looked for libcuda.so.1 in "),
        ran.output());
    assertFalse(ran.output().contains("\tat "), "no stack trace: " + ran.output());
    try (Stream<Path> left = Files.list(temporary)) {
      assertEquals(List.of(), left.toList(), "the unpacked runtime and scratch are removed");
    }
  }

  private record Result(int code, String output) {}

  private Result run(List<String> command, Map<String, String> environment, int seconds)
      throws IOException, InterruptedException {
    final Path log = Files.createTempFile(scratch, "gpu-check", ".log");
    final ProcessBuilder builder =
        new ProcessBuilder(command)
            .directory(ROOT.toFile())
            .redirectErrorStream(true)
            .redirectOutput(log.toFile());
    builder.environment().remove("LOCKSTEP_CUDA_PATH");
    builder.environment().putAll(environment);
    final Process process = builder.start();
    try {
      if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
        throw new AssertionError(
            command + " did not end within " + seconds + " s: " + Files.readString(log));
      }
    } finally {
      process.descendants().forEach(ProcessHandle::destroyForcibly);
      process.destroyForcibly();
    }
    return new Result(process.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
  }

  private static long size(Path folder) throws IOException {
    try (Stream<Path> files = Files.walk(folder)) {
      return files.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
    }
  }
}
