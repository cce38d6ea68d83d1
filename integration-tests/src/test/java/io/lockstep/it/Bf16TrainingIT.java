package io.lockstep.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.gson.JsonObject;
import io.lockstep.worker.engine.CompiledNetwork;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Training in bfloat16 ({@code lockstep.compute.precision=bf16}) through the command line. */
class Bf16TrainingIT {
  private static final String REFUSAL =
      "lockstep.compute.precision=bf16 needs a CPU with AVX512_BF16 or AMX, and this one offers"
          + " oneDNN ";

  @TempDir Path scratch;

  /**
   * Where the CPU computes bfloat16: a local-mode run on the workers' oneDNN engine in bfloat16,
   * said in the summary, that learns.
   */
  @Test
  void shouldTrainInBfloat16WhereTheCpuHasIt() throws Exception {
    assumeTrue(CompiledNetwork.computesBf16(), "no bfloat16 on this CPU: the refusal is tested");
    final Path run = scratch.resolve("bf16");
    Cli.assertExit(
        0,
        "train",
        "--set",
        "lockstep.compute.precision=bf16",
        "--max-steps",
        "60",
        "--run-dir",
        run.toString());
    final JsonObject summary = Cli.summary(run);
    assertEquals("onednn bf16", summary.get("engine").getAsString());
    assertTrue(
        summary.get("test_accuracy").getAsDouble() > 0.6, summary.get("test_accuracy").toString());
  }

  /**
   * bfloat16 asked for on a CPU without AVX512_BF16 or AMX: the step benchmark and a training run
   * are refused with one line that names the setting, the CPU's instruction set and the fix, exit
   * status 2, and no run directory. On a CPU that has bfloat16, oneDNN is capped below it ({@code
   * ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI}, its own setting for this), which makes it a CPU without;
   * on one without, the cap changes nothing.
   */
  @Test
  void shouldRefuseBfloat16OnACpuWithoutIt() throws Exception {
    final Path run = scratch.resolve("run");
    for (List<String> args :
        List.of(
            List.of(
                "bench",
                "step",
                "--model",
                "lenet",
                "--steps",
                "1",
                "--warmup",
                "0",
                "--precision",
                "bf16"),
            List.of(
                "train",
                "--set",
                "lockstep.compute.precision=bf16",
                "--max-steps",
                "2",
                "--run-dir",
                run.toString()))) {
      final Path log = scratch.resolve("log-" + args.get(0));
      final ProcessBuilder builder =
          new ProcessBuilder(HostProcesses.lockstep(args.toArray(String[]::new)))
              .redirectErrorStream(true)
              .redirectOutput(log.toFile());
      builder.environment().put("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI");
      final Process process = builder.start();
      try {
        assertTrue(process.waitFor(3, TimeUnit.MINUTES), args + " still running after 3 minutes");
        final List<String> refusals =
            Files.readAllLines(log, StandardCharsets.UTF_8).stream()
                .filter(line -> line.startsWith("lockstep: "))
                .toList();
        assertEquals(2, process.exitValue(), args + ": " + Files.readString(log));
        assertEquals(1, refusals.size(), args + ": " + Files.readString(log));
        assertTrue(refusals.get(0).startsWith("lockstep: " + REFUSAL), refusals.get(0));
        assertTrue(refusals.get(0).endsWith(": use fp32 on this host"), refusals.get(0));
      } finally {
        process.descendants().forEach(ProcessHandle::destroyForcibly);
        process.destroyForcibly();
      }
    }
    assertFalse(Files.exists(run), "the refused run left " + run);
  }
}
