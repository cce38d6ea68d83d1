package io.lockstep.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Finding and binding the CUDA libraries, on a machine without CUDA: what is looked for and where,
 * the one-line errors, and every binding against stand-in libraries that export the same symbols.
 */
class CudaLibrariesTest {
  @TempDir Path scratch;

  @Test
  void shouldNameTheLibraryEveryFolderAndTheVariableWhenNothingIsFound() {
    final CudaException error =
        assertThrows(
            CudaException.class,
            () ->
                CudaLibraries.find(
                    "cuDNN 9",
                    List.of("liblockstep-absent.so.9"),
                    CudaLibraries.folders(scratch + ":/opt/absent")));
    final String message = error.getMessage();
    assertTrue(
        message.startsWith("cuDNN 9 was not found: looked for liblockstep-absent.so.9 in "),
        message);
    assertTrue(message.contains(scratch + ", /opt/absent, /usr/local/cuda/lib64"), message);
    assertTrue(message.contains("LD_LIBRARY_PATH"), message);
    assertTrue(message.contains("set LOCKSTEP_CUDA_PATH"), message);
    assertEquals(-1, message.indexOf('\n'), "one line");
  }

  @Test
  void shouldNameAFileThatExistsButDoesNotLoad() throws IOException {
    Files.writeString(scratch.resolve("libcudnn.so.9"), "not a shared object");
    final CudaException error =
        assertThrows(
            CudaException.class,
            () ->
                CudaLibraries.find(
                    "cuDNN 9", List.of("libcudnn.so.9"), List.of(scratch.toString())));
    assertTrue(
        error.getMessage().contains("found but could not load " + scratch.resolve("libcudnn.so.9")),
        error.getMessage());
  }

  @Test
  void shouldReadTheVariableAsAPathListBeforeTheSystemCuda() {
    assertEquals(
        List.of("/a", "/b", "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"),
        CudaLibraries.folders("/a::/b: "));
    assertEquals(CudaLibraries.SYSTEM_FOLDERS, CudaLibraries.folders(null));
  }

  /**
   * Builds stand-ins for libcuda, cuBLAS, cuDNN and NVRTC that export every function the bindings
   * declare (a driver without a device), binds them, and opens device 0: every binding's types are
   * accepted and the driver's error comes back as one line.
   */
  @Test
  void shouldBindEveryFunctionAndReportTheDriversError() throws Exception {
    assumeTrue(
        new ProcessBuilder("cc", "--version").start().waitFor(30, TimeUnit.SECONDS),
        "needs a C compiler (cc) to build the stand-in libraries");
    for (CudaLibraries.Library library : CudaLibraries.Library.values()) {
      final StringBuilder source = new StringBuilder("#include <stddef.h>\n");
      for (Method method : library.binding.getDeclaredMethods()) {
        if (Modifier.isNative(method.getModifiers())) {
          source.append(stub(method)).append('\n');
        }
      }
      final Path c = scratch.resolve(library.name() + ".c");
      Files.writeString(c, source);
      final Path so = scratch.resolve(library.sonames.get(0));
      final Process cc =
          new ProcessBuilder("cc", "-shared", "-fPIC", "-o", so.toString(), c.toString())
              .redirectErrorStream(true)
              .start();
      final String output = new String(cc.getInputStream().readAllBytes());
      assertTrue(cc.waitFor(60, TimeUnit.SECONDS) && cc.exitValue() == 0, output);
    }
    final List<String> loaded = CudaLibraries.load(CudaLibraries.folders(scratch.toString()));
    assertEquals(4, loaded.size(), loaded.toString());
    assertTrue(loaded.get(0).startsWith("driver=" + scratch), loaded.toString());
    final CudaException error = assertThrows(CudaException.class, () -> CudaDevice.open(0));
    assertEquals(
        "cuInit (is an NVIDIA GPU and its driver present?) failed: CUDA_ERROR_NO_DEVICE",
        error.getMessage());
  }

  /**
   * A C function of the same name: cuInit fails with CUDA_ERROR_NO_DEVICE (100), which
   * cuGetErrorName names.
   */
  private static String stub(Method method) {
    final String name = method.getName();
    if (name.equals("cuInit")) {
      return "int cuInit(unsigned int flags) { return 100; }";
    }
    if (name.equals("cuGetErrorName")) {
      return "int cuGetErrorName(int r, const char** s) { *s = r == 100 ? \"CUDA_ERROR_NO_DEVICE\" : \"?\"; return 0; }";
    }
    final String type =
        method.getReturnType() == String.class
            ? "const char*"
            : method.getReturnType() == long.class ? "size_t" : "int";
    return type + " " + name + "() { return 0; }";
  }
}
