package io.lockstep.models;

import java.util.Objects;
import org.deeplearning4j.nn.conf.dropout.IDropout;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.MulOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.shade.jackson.annotation.JsonCreator;
import org.nd4j.shade.jackson.annotation.JsonIgnoreProperties;
import org.nd4j.shade.jackson.annotation.JsonProperty;

/**
 * Inverted dropout as PyTorch's {@code nn.Dropout(p)} computes it in training (each input zeroed
 * with probability p, the others scaled by 1 / (1 - p); nothing at inference), with masks that are
 * a function of each sample, not of a random generator's state: element {@code e} of the sample
 * with key {@code k} is kept in layer {@code L} exactly when a hash of {@code (k, L, e)} falls
 * below {@code 1 - p}. A sample's key comes from the job's seed, the epoch and the image ({@link
 * #sampleKey}), so any worker that computes an image drops the same inputs for it, whichever slice,
 * micro-batch or engine it computes it in: N workers take the bits of one process, and a rerun the
 * bits of the first.
 *
 * <p>The replica sets the keys of the batch's samples ({@link #samples}) before each forward pass;
 * a forward pass in training without them is refused. Deeplearning4j's layers call {@link
 * #applyDropout} and {@link #backprop}; the oneDNN engine fills the same masks ({@link #fill}).
 */
@JsonIgnoreProperties({"samples", "mask"})
public final class SampleDropout implements IDropout {
  private static final long serialVersionUID = 1L;
  private static final long GOLDEN = 0x9E3779B97F4A7C15L;
  private static final int BITS = 24;

  private final double p;
  private final String layer;
  private transient long[] samples;
  private transient INDArray mask;

  /**
   * @param p the probability that an input is zeroed, in [0, 1) (PyTorch's {@code p})
   * @param layer the layer whose input it drops: masks differ between layers
   */
  @JsonCreator
  public SampleDropout(@JsonProperty("p") double p, @JsonProperty("layer") String layer) {
    if (!(p >= 0 && p < 1)) {
      throw new IllegalArgumentException(
          "dropout probability " + p + " of layer " + layer + ": expected a value in [0, 1)");
    }
    this.p = p;
    this.layer = Objects.requireNonNull(layer, "layer");
  }

  /**
   * @return the probability that an input is zeroed
   */
  @JsonProperty("p")
  public double p() {
    return p;
  }

  /**
   * @return the layer whose input this drops
   */
  @JsonProperty("layer")
  public String layer() {
    return layer;
  }

  /**
   * The key of one training sample: the same on every worker that computes it.
   *
   * @param seed the job's seed
   * @param epoch the epoch
   * @param sample the sample's index in the training set
   * @return the key
   */
  public static long sampleKey(long seed, int epoch, long sample) {
    return mix(mix(mix(seed) + epoch * GOLDEN) + sample);
  }

  /**
   * Sets the keys of the next forward pass's samples, one per row of its input, in order.
   *
   * @param keys the keys ({@link #sampleKey}); null for none
   */
  public void samples(long[] keys) {
    this.samples = keys;
  }

  /**
   * @return the value a kept input is multiplied by: 1 / (1 - p) in single precision
   */
  public float scale() {
    return (float) (1 / (1 - p));
  }

  /**
   * Fills one sample's mask: each element {@link #scale} where the input is kept, 0 where dropped.
   *
   * @param key the sample's key
   * @param mask the mask of the sample's inputs, in the order of the layer's flattened input
   * @param from where the sample's mask starts in {@code mask}
   * @param elements the inputs per sample
   */
  public void fill(long key, float[] mask, int from, int elements) {
    final long threshold = Math.round((1 - p) * (1L << BITS));
    final long base = mix(key ^ (layer.hashCode() * GOLDEN));
    final float scale = scale();
    for (int e = 0; e < elements; e++) {
      mask[from + e] = (mix(base + e * GOLDEN) >>> (Long.SIZE - BITS)) < threshold ? scale : 0f;
    }
  }

  /**
   * The masks of the samples whose keys were set last.
   *
   * @param rows the samples in the forward pass
   * @param elements the inputs per sample
   * @return {@code rows x elements} values, row after row
   * @throws IllegalStateException when no keys, or keys for another number of samples, were set
   */
  public float[] masks(int rows, int elements) {
    final long[] keys = samples;
    if (keys == null || keys.length != rows) {
      throw new IllegalStateException(
          "dropout before layer "
              + layer
              + ": the forward pass has "
              + rows
              + " samples but "
              + (keys == null ? "no sample keys were" : keys.length + " sample keys were")
              + " set; the replica sets them from the samples' indices before each step");
    }
    final float[] masks = new float[Math.multiplyExact(rows, elements)];
    for (int r = 0; r < rows; r++) {
      fill(keys[r], masks, r * elements, elements);
    }
    return masks;
  }

  @Override
  public INDArray applyDropout(
      INDArray input, INDArray output, int iteration, int epoch, LayerWorkspaceMgr workspaces) {
    final int rows = (int) input.size(0);
    final int elements = (int) (input.length() / Math.max(1, rows));
    final float[] values = masks(rows, elements);
    try (MemoryWorkspace ignored = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
      mask = Nd4j.createFromArray(values).reshape('c', input.shape()).castTo(output.dataType());
    }
    final INDArray in =
        input.dataType() == output.dataType() ? input : input.castTo(output.dataType());
    Nd4j.getExecutioner().exec(new MulOp(in, mask, output));
    return output;
  }

  @Override
  public INDArray backprop(INDArray gradAtOutput, INDArray gradAtInput, int iteration, int epoch) {
    if (mask == null) {
      throw new IllegalStateException(
          "dropout before layer " + layer + ": backward pass without a forward pass in training");
    }
    final INDArray m =
        mask.dataType() == gradAtInput.dataType() ? mask : mask.castTo(gradAtInput.dataType());
    Nd4j.getExecutioner().exec(new MulOp(gradAtOutput, m, gradAtInput));
    mask = null;
    return gradAtInput;
  }

  @Override
  public void clear() {
    mask = null;
  }

  @Override
  public SampleDropout clone() {
    return new SampleDropout(p, layer);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof SampleDropout d && d.p == p && d.layer.equals(layer);
  }

  @Override
  public int hashCode() {
    return Objects.hash(p, layer);
  }

  @Override
  public String toString() {
    return "SampleDropout(p=" + p + ", layer=" + layer + ")";
  }

  /** SplitMix64's finalizer: a bijection of 64 bits whose outputs look independent. */
  private static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }
}
