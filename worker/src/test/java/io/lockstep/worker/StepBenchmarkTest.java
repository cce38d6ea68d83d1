package io.lockstep.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.ComputeEngine;
import io.lockstep.conf.ConfigurationException;
import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import io.lockstep.conf.Precision;
import io.lockstep.models.ModelZoo;
import java.util.Map;
import org.junit.jupiter.api.Test;

class StepBenchmarkTest {

  @Test
  void timesLenetsWholeStepOnTheOneDnnEngine() {
    final StepBenchmark.Result result =
        StepBenchmark.run(
            new StepBenchmark.Settings("lenet", 16, 3, 1, 1, ComputeEngine.AUTO, Precision.FP32));
    assertEquals(3, result.stepMillis().length);
    assertTrue(result.imagesPerSecond() > 0);
    final String line = result.line();
    assertTrue(line.startsWith("model=lenet batch_size=16 steps=3 threads=1"), line);
    assertTrue(line.contains(" parameters=431080 engine=onednn precision=fp32 helpers=4/4 "), line);
    assertTrue(line.matches(".* median_update_ms=[0-9]+\\.[0-9]{2} .*"), line);
    assertEquals(3, result.updateMillis().length);
    assertTrue(line.matches(".* images_per_second=[0-9]+\\.[0-9]$"), line);
  }

  /** In bfloat16 where the CPU computes it: the line says so. */
  @Test
  void timesLenetsStepInBfloat16() {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        io.lockstep.worker.engine.CompiledNetwork.computesBf16(), "no bfloat16 on this CPU");
    final String line =
        StepBenchmark.run(
                new StepBenchmark.Settings(
                    "lenet", 16, 3, 1, 1, ComputeEngine.AUTO, Precision.BF16))
            .line();
    assertTrue(line.contains(" engine=onednn precision=bf16 "), line);
  }

  /** torchvision's ResNet-18 with a 3x3 stem and a 10-way head, as the PyTorch reference counts. */
  @Test
  void resnet18ForCifarHasTheReferencesParameterCount() {
    try (Replica replica =
        Replica.create(
            ModelZoo.configuration(
                JobConfig.load(
                    JobConfig.overrides(Map.of(Keys.MODEL_NAME.name(), "resnet18-cifar"))),
                10))) {
      assertEquals(11_173_962, replica.trainableParameterCount());
      assertEquals("onednn", replica.engine());
    }
  }

  @Test
  void refusesBadSettingsNamingTheFlag() {
    assertTrue(
        assertThrows(
                IllegalArgumentException.class,
                () ->
                    new StepBenchmark.Settings(
                        "lenet", 0, 3, 1, 0, ComputeEngine.AUTO, Precision.FP32))
            .getMessage()
            .contains("--batch-size"));
    assertTrue(
        assertThrows(
                ConfigurationException.class,
                () ->
                    new StepBenchmark.Settings(
                        "vgg99", 8, 3, 1, 0, ComputeEngine.AUTO, Precision.FP32))
            .getMessage()
            .contains("lenet"));
  }

  @Test
  void theOneDnnEngineRefusesAModelItCannotComputeWhenAskedForIt() {
    final JobConfig job =
        JobConfig.load(
            JobConfig.overrides(
                Map.of(
                    Keys.MODEL_NAME.name(), "resnet-mini",
                    Keys.BATCHNORM_SYNC.name(), "true",
                    Keys.WORKER_ENGINE.name(), "onednn")));
    final ConfigurationException e =
        assertThrows(
            ConfigurationException.class,
            () -> Replica.create(ModelZoo.configuration(job, 10), job.get(Keys.WORKER_ENGINE)));
    assertTrue(e.getMessage().startsWith("lockstep.worker.engine=onednn cannot"), e.getMessage());
    try (Replica fallback =
        Replica.create(ModelZoo.configuration(job, 10), io.lockstep.conf.ComputeEngine.AUTO)) {
      assertTrue(fallback.engine().startsWith("deeplearning4j (the oneDNN engine"));
    }
  }
}
