package io.lockstep.cuda;

import java.util.Locale;
import java.util.Set;

/**
 * Which cuDNN convolution algorithms an engine may use. Either way the choice follows cuDNN's
 * heuristics, which rank the same way on every run for the same shapes, device and cuDNN, and
 * leaves out the backward algorithms that add with atomics (ALGO_0 and ALGO_3), so a run's bits
 * repeat.
 */
public enum Convolutions {
  /**
   * Only GEMM-based and direct algorithms: the gradient is as close to the exact one as PyTorch's
   * fp32 gradient is. FFT and Winograd transforms are left out.
   */
  EXACT(Set.of(0, 1, 2, 3), Set.of(1), Set.of(1)),
  /** Any deterministic algorithm, FFT and Winograd transforms included. */
  FAST(Set.of(0, 1, 2, 3, 4, 5, 6, 7), Set.of(1, 2, 3, 4, 5), Set.of(1, 2, 5, 6));

  final Set<Integer> forward;
  final Set<Integer> backwardData;
  final Set<Integer> backwardFilter;

  Convolutions(Set<Integer> forward, Set<Integer> backwardData, Set<Integer> backwardFilter) {
    this.forward = forward;
    this.backwardData = backwardData;
    this.backwardFilter = backwardFilter;
  }

  /**
   * @param name exact or fast
   * @return that policy
   * @throws IllegalArgumentException naming the choices
   */
  public static Convolutions named(String name) {
    for (Convolutions c : values()) {
      if (c.name().equalsIgnoreCase(name)) {
        return c;
      }
    }
    throw new IllegalArgumentException("convolutions '" + name + "': expected exact or fast");
  }

  @Override
  public String toString() {
    return name().toLowerCase(Locale.ROOT);
  }
}
