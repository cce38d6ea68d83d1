package io.lockstep.cuda;

import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
import java.io.File;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Finds the node's CUDA libraries by soname and binds them: the driver ({@code libcuda.so.1}),
 * cuBLAS and NVRTC of CUDA 13 or 12, and cuDNN 9.
 *
 * <p>Each library is looked for first in the folders of {@value #PATH_VARIABLE} (a list like {@code
 * LD_LIBRARY_PATH}), then in a system CUDA ({@code /usr/local/cuda/lib64}), then wherever the
 * dynamic linker looks by itself ({@code LD_LIBRARY_PATH}, {@code ldconfig}'s cache). The CUDA
 * libraries that PyTorch's wheels bring sit in {@code site-packages/nvidia/<name>/lib}: name those
 * folders in {@value #PATH_VARIABLE}. A library that is found nowhere fails with one line that
 * names it, every place looked in, and the variable to set.
 */
public final class CudaLibraries {
  /** The environment variable that names extra folders to look in, separated by ':'. */
  public static final String PATH_VARIABLE = "LOCKSTEP_CUDA_PATH";

  /** The system CUDA's folders, looked in after {@value #PATH_VARIABLE}'s. */
  static final List<String> SYSTEM_FOLDERS =
      List.of("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib");

  /** What each binding needs, in the order of preference of its sonames. */
  enum Library {
    DRIVER("the CUDA driver", List.of("libcuda.so.1"), Driver.class),
    CUBLAS("cuBLAS", List.of("libcublas.so.13", "libcublas.so.12"), Cublas.class),
    CUDNN("cuDNN 9", List.of("libcudnn.so.9"), Cudnn.class),
    NVRTC("NVRTC", List.of("libnvrtc.so.13", "libnvrtc.so.12"), Nvrtc.class);

    final String title;
    final List<String> sonames;
    final Class<?> binding;

    Library(String title, List<String> sonames, Class<?> binding) {
      this.title = title;
      this.sonames = sonames;
      this.binding = binding;
    }
  }

  private static volatile List<String> loaded;

  private CudaLibraries() {}

  /**
   * Binds every library once per JVM.
   *
   * @return each library's soname and where it was found, for the log
   * @throws CudaException naming the first library not found and every place looked in
   */
  public static List<String> load() {
    return load(folders(System.getenv(PATH_VARIABLE)));
  }

  /**
   * Binds every library once per JVM, looking in the given folders first.
   *
   * @param folders where to look before the dynamic linker's own path
   * @return each library's soname and where it was found
   */
  static synchronized List<String> load(List<String> folders) {
    if (loaded != null) {
      return loaded;
    }
    final List<String> found = new ArrayList<>();
    for (Library library : Library.values()) {
      final NativeLibrary bound = find(library.title, library.sonames, folders);
      try {
        Native.register(library.binding, bound);
      } catch (UnsatisfiedLinkError e) {
        throw new CudaException(
            library.title
                + " at "
                + bound.getFile()
                + " lacks a function Lockstep calls ("
                + firstLine(e.getMessage())
                + "); install "
                + String.join(" or ", library.sonames)
                + " of a supported version, or point "
                + PATH_VARIABLE
                + " at one");
      }
      found.add(library.name().toLowerCase(Locale.ROOT) + "=" + bound.getFile());
    }
    loaded = List.copyOf(found);
    return loaded;
  }

  /**
   * @return the driver's CUDA version, cuDNN's and NVRTC's, as they report them
   * @throws CudaException when the libraries are not loaded yet and cannot be
   */
  public static String versions() {
    load();
    final int[] driver = new int[1];
    Driver.check(Driver.cuDriverGetVersion(driver), "cuDriverGetVersion");
    final int[] major = new int[1];
    final int[] minor = new int[1];
    Nvrtc.check(Nvrtc.nvrtcVersion(major, minor), "nvrtcVersion");
    return "CUDA driver "
        + driver[0] / 1000
        + "."
        + driver[0] % 1000 / 10
        + ", cuDNN "
        + Cudnn.cudnnGetVersion()
        + ", NVRTC "
        + major[0]
        + "."
        + minor[0];
  }

  /**
   * @param variable the value of {@value #PATH_VARIABLE}, or null
   * @return the folders to look in, in order: the variable's, then the system CUDA's
   */
  static List<String> folders(String variable) {
    final Set<String> folders = new LinkedHashSet<>();
    if (variable != null) {
      for (String folder : variable.split(":")) {
        if (!folder.isBlank()) {
          folders.add(folder.trim());
        }
      }
    }
    folders.addAll(SYSTEM_FOLDERS);
    return List.copyOf(folders);
  }

  /**
   * Loads the first soname of a library that opens, from the folders and then from the linker's own
   * search.
   */
  static NativeLibrary find(String title, List<String> sonames, List<String> folders) {
    final List<String> failures = new ArrayList<>();
    for (String soname : sonames) {
      for (String folder : folders) {
        final File file = new File(folder, soname);
        if (file.isFile()) {
          try {
            return NativeLibrary.getInstance(file.getAbsolutePath());
          } catch (UnsatisfiedLinkError e) {
            failures.add(file + " (" + firstLine(e.getMessage()) + ")");
          }
        }
      }
      try {
        return NativeLibrary.getInstance(soname);
      } catch (UnsatisfiedLinkError e) {
        // not on the linker's path either; the message below names where it looked
      }
    }
    throw new CudaException(notFound(title, sonames, folders, failures));
  }

  static String notFound(
      String title, List<String> sonames, List<String> folders, List<String> failures) {
    return title
        + " was not found: looked for "
        + String.join(" or ", sonames)
        + " in "
        + String.join(", ", folders)
        + " and on the dynamic linker's path (LD_LIBRARY_PATH, ldconfig)"
        + (failures.isEmpty() ? "" : "; found but could not load " + String.join(", ", failures))
        + "; install it, or set "
        + PATH_VARIABLE
        + " to the folder that holds it (for PyTorch's wheels, site-packages/nvidia/*/lib)";
  }

  private static String firstLine(String message) {
    if (message == null) {
      return "no reason given";
    }
    final int end = message.indexOf('\n');
    return end < 0 ? message : message.substring(0, end);
  }
}
