package io.lockstep.models;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.layers.convolution.ConvolutionHelper;
import org.deeplearning4j.nn.layers.convolution.ConvolutionLayer;
import org.deeplearning4j.nn.layers.convolution.subsampling.SubsamplingLayer;
import org.deeplearning4j.nn.layers.normalization.BatchNormalization;
import org.deeplearning4j.nn.layers.wrapper.BaseWrapperLayer;

/**
 * Deeplearning4j's platform helpers: the layer implementations that hand a convolution, pooling or
 * BatchNorm layer to oneDNN on the CPU backend (or cuDNN on the CUDA backend) instead of
 * Deeplearning4j's own im2col path, three times faster here. Deeplearning4j 1.0.0-M2.1 creates them
 * only when the system property {@value #DISABLE_PROPERTY} is {@code false} (its default is {@code
 * true}), and on the CPU backend only with the class {@code org.nd4j.nativeblas.Nd4jCpu} that this
 * module supplies. {@link #enable()} must run before a network is initialized, {@link
 * #detachUnsupported} after; {@link #attached} says which layers got one.
 */
public final class ComputeHelpers {
  /** Deeplearning4j's switch; a value the user sets on the command line is kept. */
  public static final String DISABLE_PROPERTY = "org.eclipse.deeplearning4j.helpers.disable";

  /** A convolution layer's helper: Deeplearning4j attaches it with no per-layer switch. */
  private static final VarHandle CONVOLUTION_HELPER = convolutionHelper();

  private ComputeHelpers() {}

  private static VarHandle convolutionHelper() {
    try {
      return MethodHandles.privateLookupIn(ConvolutionLayer.class, MethodHandles.lookup())
          .findVarHandle(ConvolutionLayer.class, "helper", ConvolutionHelper.class);
    } catch (ReflectiveOperationException e) {
      throw new ExceptionInInitializerError(e);
    }
  }

  /**
   * Lets the networks initialized from now on in this JVM attach helpers, unless the user set
   * {@value #DISABLE_PROPERTY} themselves.
   */
  public static void enable() {
    if (System.getProperty(DISABLE_PROPERTY) == null) {
      System.setProperty(DISABLE_PROPERTY, "false");
    }
    // Deeplearning4j swallows any failure of this lookup and drops every helper; here it surfaces
    org.nd4j.nativeblas.Nd4jCpu.Environment.getInstance();
  }

  /**
   * Takes the helper off the layers it cannot compute, which then run Deeplearning4j's own code:
   * convolutions dilated by more than 1. libnd4j's oneDNN {@code conv2d} derives the right padding
   * from the undilated kernel, so oneDNN rejects every such layer's descriptor; Deeplearning4j
   * would log that error with its stack trace on each network's first pass through the layer and
   * only then fall back.
   *
   * @param network an initialized network
   */
  public static void detachUnsupported(ComputationGraph network) {
    for (Layer layer : network.getLayers()) {
      final Layer inner =
          layer instanceof BaseWrapperLayer wrapper ? wrapper.getUnderlying() : layer;
      if (inner instanceof ConvolutionLayer convolution && dilated(convolution)) {
        CONVOLUTION_HELPER.set(convolution, null);
      }
    }
  }

  private static boolean dilated(ConvolutionLayer layer) {
    final int[] dilation =
        ((org.deeplearning4j.nn.conf.layers.ConvolutionLayer) layer.conf().getLayer())
            .getDilation();
    return dilation != null && (dilation[0] != 1 || dilation[1] != 1);
  }

  /**
   * The layers that can take a helper, each with the helper it has.
   *
   * @param network an initialized network
   * @return one entry per convolution, pooling and BatchNorm layer, in the network's order
   */
  public static List<Attachment> attached(ComputationGraph network) {
    final List<Attachment> attachments = new ArrayList<>();
    for (Layer layer : network.getLayers()) {
      final Layer inner =
          layer instanceof BaseWrapperLayer wrapper ? wrapper.getUnderlying() : layer;
      if (inner instanceof ConvolutionLayer
          || inner instanceof SubsamplingLayer
          || inner instanceof BatchNormalization) {
        final Object helper = inner.getHelper();
        attachments.add(
            new Attachment(
                inner.conf().getLayer().getLayerName(),
                helper == null ? null : helper.getClass().getSimpleName()));
      }
    }
    return attachments;
  }

  /**
   * A summary for logs and benchmark lines: {@code 4/4} when every layer that can take a helper has
   * one.
   *
   * @param network an initialized network
   * @return attached/eligible
   */
  public static String summary(ComputationGraph network) {
    final List<Attachment> attachments = attached(network);
    final long with = attachments.stream().filter(a -> a.helper() != null).count();
    return with + "/" + attachments.size();
  }

  /**
   * One layer's helper.
   *
   * @param layer the layer's name
   * @param helper the helper's class name, or null when the layer runs Deeplearning4j's own code
   */
  public record Attachment(String layer, String helper) {}
}
