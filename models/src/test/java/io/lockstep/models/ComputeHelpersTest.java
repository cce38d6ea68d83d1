package io.lockstep.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.deeplearning4j.nn.conf.CNN2DFormat;
import org.deeplearning4j.nn.conf.ConvolutionMode;
import org.deeplearning4j.nn.conf.layers.ConvolutionLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.layers.mkldnn.MKLDNNConvHelper;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

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
  void dilatedConvolutionsOfTheGroundingModelRunDeeplearning4jsOwnCode() {
    final ComputationGraph network = network("shapes-grounding");
    ComputeHelpers.detachUnsupported(network);
    final String conv = "MKLDNNConvHelper";
    final String pool = "MKLDNNSubsamplingHelper";
    assertEquals(
        List.of(
            new ComputeHelpers.Attachment("conv1", conv),
            new ComputeHelpers.Attachment("pool1", pool),
            new ComputeHelpers.Attachment("conv2", conv),
            new ComputeHelpers.Attachment("pool2", pool),
            new ComputeHelpers.Attachment("conv3", conv),
            new ComputeHelpers.Attachment("pool3", pool),
            new ComputeHelpers.Attachment("conv4", conv),
            new ComputeHelpers.Attachment("conv5", null),
            new ComputeHelpers.Attachment("conv6", null),
            new ComputeHelpers.Attachment("yolo_head", conv)),
        ComputeHelpers.attached(network));
  }

  /**
   * Why {@link ComputeHelpers#detachUnsupported} exists: once libnd4j's oneDNN convolution takes a
   * dilated layer, this fails and the detachment can go.
   */
  @Test
  void oneDnnRejectsADilatedConvolutionAndTakesAnUndilatedOne() {
    ComputeHelpers.enable();
    final INDArray input = Nd4j.rand(DataType.FLOAT, 2, 4, 8, 8);
    final INDArray weights = Nd4j.rand(DataType.FLOAT, 4, 4, 3, 3);
    final INDArray bias = Nd4j.rand(DataType.FLOAT, 4);
    assertEquals(
        List.of(2L, 4L, 8L, 8L),
        List.of(
            java.util.Arrays.stream(convolve(input, weights, bias, 1).shape())
                .boxed()
                .toArray(Long[]::new)));
    assertThrows(RuntimeException.class, () -> convolve(input, weights, bias, 2));
  }

  /**
   * A 3x3 convolution that keeps the size (padding as wide as the dilation) by a helper of its own:
   * a helper keeps the geometry of its first call.
   */
  private static INDArray convolve(INDArray input, INDArray weights, INDArray bias, int dilation) {
    return new MKLDNNConvHelper(DataType.FLOAT)
        .preOutput(
            input,
            weights,
            bias,
            new int[] {3, 3},
            new int[] {1, 1},
            new int[] {dilation, dilation},
            ConvolutionLayer.AlgoMode.PREFER_FASTEST,
            ConvolutionLayer.FwdAlgo.IMPLICIT_GEMM,
            ConvolutionMode.Truncate,
            new int[] {dilation, dilation},
            CNN2DFormat.NCHW,
            LayerWorkspaceMgr.noWorkspaces());
  }

  @Test
  void theBackendSaysItUsesOneDnn() {
    assertEquals(true, org.nd4j.nativeblas.Nd4jCpu.Environment.getInstance().isUseMKLDNN());
  }
}
