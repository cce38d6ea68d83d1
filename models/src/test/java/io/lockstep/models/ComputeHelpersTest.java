package io.lockstep.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;

/**
 * Deeplearning4j's oneDNN helpers really attach: its switch is off by default and M2.1 looks for
 * them under a class name it no longer has, so without {@link ComputeHelpers#enable()} and the
 * compatibility class every layer silently runs the slow path.
 */
class ComputeHelpersTest {

  private static ComputationGraph network(String model) {
    ComputeHelpers.enable();
    return Networks.of(model);
  }

  @Test
  void convolutionAndPoolingLayersOfLenetGetOneDnn() {
    final List<ComputeHelpers.Attachment> attached = ComputeHelpers.attached(network("lenet"));
    assertEquals(
        List.of(
            new ComputeHelpers.Attachment("conv1", "MKLDNNConvHelper"),
            new ComputeHelpers.Attachment("pool1", "MKLDNNSubsamplingHelper"),
            new ComputeHelpers.Attachment("conv2", "MKLDNNConvHelper"),
            new ComputeHelpers.Attachment("pool2", "MKLDNNSubsamplingHelper")),
        attached);
    assertEquals("4/4", ComputeHelpers.summary(network("lenet")));
  }

  @Test
  void everyConvolutionAndBatchNormOfResnet18GetsOne() {
    final List<ComputeHelpers.Attachment> attached =
        ComputeHelpers.attached(network("resnet18-cifar"));
    assertEquals(40, attached.size());
    for (ComputeHelpers.Attachment attachment : attached) {
      assertNotNull(attachment.helper(), attachment.layer());
    }
  }

  @Test
  void theBackendSaysItUsesOneDnn() {
    assertEquals(true, org.nd4j.nativeblas.Nd4jCpu.Environment.getInstance().isUseMKLDNN());
  }
}
