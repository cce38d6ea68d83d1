package org.nd4j.nativeblas;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;

/**
 * The class under the name Deeplearning4j 1.0.0-M2.1 looks for before it attaches a oneDNN layer
 * helper. {@code BaseMKLDNNHelper.mklDnnEnabled()} looks up {@code
 * org.nd4j.nativeblas.Nd4jCpu$Environment} and its method {@code isUseMKLDNN()} by reflection; in
 * M2.1 the CPU backend's bindings live at {@code
 * org.nd4j.linalg.cpu.nativecpu.bindings.Nd4jCpu$Environment} and the method is {@code
 * isUseONEDNN()}, so without this class the lookup fails and every convolution, pooling and
 * BatchNorm layer drops its oneDNN helper. This class answers under the old name from the new one.
 * On a backend without those bindings (CUDA) it answers false, as the lookup did.
 */
public final class Nd4jCpu {
  private Nd4jCpu() {}

  /** The native environment's flag for oneDNN, under its pre-M2.1 name. */
  public static final class Environment {
    private static final Environment INSTANCE = new Environment();
    private static final String BINDINGS =
        "org.nd4j.linalg.cpu.nativecpu.bindings.Nd4jCpu$Environment";

    private final boolean useOneDnn;

    private Environment() {
      this.useOneDnn = lookUp();
    }

    /**
     * @return the one instance
     */
    public static Environment getInstance() {
      return INSTANCE;
    }

    /**
     * @return whether the CPU backend was built with oneDNN and uses it
     */
    public boolean isUseMKLDNN() {
      return useOneDnn;
    }

    private static boolean lookUp() {
      final Class<?> bindings;
      try {
        bindings = Class.forName(BINDINGS);
      } catch (ClassNotFoundException e) {
        return false; // not the CPU backend
      }
      try {
        final MethodHandles.Lookup lookup = MethodHandles.publicLookup();
        final MethodHandle getInstance =
            lookup.findStatic(bindings, "getInstance", MethodType.methodType(bindings));
        final MethodHandle isUseOneDnn =
            lookup.findVirtual(bindings, "isUseONEDNN", MethodType.methodType(boolean.class));
        return (boolean) isUseOneDnn.invoke(getInstance.invoke());
      } catch (Throwable e) {
        throw new IllegalStateException(
            "ND4J's CPU environment has no isUseONEDNN(); this build expects ND4J 1.0.0-M2.1", e);
      }
    }
  }
}
