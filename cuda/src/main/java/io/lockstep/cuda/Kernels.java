package io.lockstep.cuda;

import com.sun.jna.Memory;
import com.sun.jna.StringArray;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * The engine's element-wise and small kernels, compiled once per device by NVRTC into machine code
 * for the device's architecture. Every kernel is deterministic: reductions run in a fixed order,
 * and no kernel adds with atomics.
 */
final class Kernels {
  /** Threads per block for the element-wise kernels. */
  static final int BLOCK = 256;

  static final String SOURCE =
      """
      typedef long long i64;
      #define INDEX ((i64) blockIdx.x * blockDim.x + threadIdx.x)
      __device__ float negative_infinity() { return __int_as_float(0xff800000); }

      extern "C" __global__ void relu_forward(i64 n, const float* x, float* y) {
        i64 i = INDEX;
        if (i < n) { float v = x[i]; y[i] = v > 0.f ? v : 0.f; }
      }

      extern "C" __global__ void relu_backward(
          i64 n, const float* y, const float* dy, float* dx, int accumulate) {
        i64 i = INDEX;
        if (i < n) { float g = y[i] > 0.f ? dy[i] : 0.f; dx[i] = accumulate ? dx[i] + g : g; }
      }

      extern "C" __global__ void bias_forward(
          i64 n, int channels, int inner, float* y, const float* b) {
        i64 i = INDEX;
        if (i < n) { y[i] += b[(i / inner) % channels]; }
      }

      // One block per channel: db[c] = sum over n and positions of dy[n, c, :], in a fixed order.
      extern "C" __global__ void channel_sum(
          int batch, int channels, int inner, const float* dy, float* db) {
        __shared__ float part[256];
        int c = blockIdx.x;
        i64 count = (i64) batch * inner;
        float s = 0.f;
        for (i64 j = threadIdx.x; j < count; j += blockDim.x) {
          i64 n = j / inner;
          i64 k = j - n * inner;
          s += dy[(n * channels + c) * inner + k];
        }
        part[threadIdx.x] = s;
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
          if (threadIdx.x < w) { part[threadIdx.x] += part[threadIdx.x + w]; }
          __syncthreads();
        }
        if (threadIdx.x == 0) { db[c] = part[0]; }
      }

      extern "C" __global__ void max_pool_forward(
          i64 n, int h, int w, int oh, int ow, int k, int s, int p,
          const float* x, float* y, int* argmax) {
        i64 i = INDEX;
        if (i >= n) { return; }
        int ox = (int) (i % ow);
        int oy = (int) ((i / ow) % oh);
        i64 plane = i / ((i64) ow * oh);
        int y0 = oy * s - p;
        int x0 = ox * s - p;
        int y1 = min(y0 + k, h);
        int x1 = min(x0 + k, w);
        y0 = max(y0, 0);
        x0 = max(x0, 0);
        const float* src = x + plane * h * w;
        int best = y0 * w + x0;
        float m = negative_infinity();
        for (int yy = y0; yy < y1; yy++) {
          for (int xx = x0; xx < x1; xx++) {
            int j = yy * w + xx;
            float v = src[j];
            if (v > m || v != v) { m = v; best = j; }
          }
        }
        y[i] = m;
        argmax[i] = best;
      }

      // One thread per input element gathers the outputs whose maximum it was: no atomics.
      extern "C" __global__ void max_pool_backward(
          i64 n, int h, int w, int oh, int ow, int k, int s, int p,
          const int* argmax, const float* dy, float* dx, int accumulate) {
        i64 i = INDEX;
        if (i >= n) { return; }
        int xx = (int) (i % w);
        int yy = (int) ((i / w) % h);
        i64 plane = i / ((i64) w * h);
        int oy0 = yy + p < k ? 0 : (yy + p - k) / s + 1;
        int oy1 = min((yy + p) / s, oh - 1);
        int ox0 = xx + p < k ? 0 : (xx + p - k) / s + 1;
        int ox1 = min((xx + p) / s, ow - 1);
        int j = yy * w + xx;
        float g = 0.f;
        for (int oy = oy0; oy <= oy1; oy++) {
          for (int ox = ox0; ox <= ox1; ox++) {
            i64 o = plane * oh * ow + oy * ow + ox;
            if (argmax[o] == j) { g += dy[o]; }
          }
        }
        dx[i] = accumulate ? dx[i] + g : g;
      }

      extern "C" __global__ void global_average_forward(
          i64 planes, int inner, const float* x, float* y) {
        i64 i = INDEX;
        if (i >= planes) { return; }
        float s = 0.f;
        for (int k = 0; k < inner; k++) { s += x[i * inner + k]; }
        y[i] = s / inner;
      }

      extern "C" __global__ void global_average_backward(
          i64 n, int inner, const float* dy, float* dx, int accumulate) {
        i64 i = INDEX;
        if (i < n) { float g = dy[i / inner] / inner; dx[i] = accumulate ? dx[i] + g : g; }
      }

      extern "C" __global__ void add_forward(i64 n, const float* a, const float* b, float* y) {
        i64 i = INDEX;
        if (i < n) { y[i] = a[i] + b[i]; }
      }

      extern "C" __global__ void pass_gradient(i64 n, const float* dy, float* dx, int accumulate) {
        i64 i = INDEX;
        if (i < n) { dx[i] = accumulate ? dx[i] + dy[i] : dy[i]; }
      }

      // One thread per sample: the loss and d(mean loss)/d(logits).
      extern "C" __global__ void softmax_cross_entropy(
          int batch, int classes, const float* logits, const int* labels,
          float* dlogits, float* losses) {
        i64 i = INDEX;
        if (i >= batch) { return; }
        const float* l = logits + i * classes;
        float m = negative_infinity();
        for (int j = 0; j < classes; j++) { m = fmaxf(m, l[j]); }
        float s = 0.f;
        for (int j = 0; j < classes; j++) { s += expf(l[j] - m); }
        int label = labels[i];
        losses[i] = m + logf(s) - l[label];
        for (int j = 0; j < classes; j++) {
          float q = expf(l[j] - m) / s - (j == label ? 1.f : 0.f);
          dlogits[i * classes + j] = q / batch;
        }
      }

      extern "C" __global__ void mean_loss(int batch, const float* losses, float* loss) {
        if (INDEX == 0) {
          float s = 0.f;
          for (int i = 0; i < batch; i++) { s += losses[i]; }
          *loss = s / batch;
        }
      }

      // PyTorch's SGD with momentum (no dampening, no Nesterov): v = mu v + (scale g + decay p);
      // p -= lr v.
      extern "C" __global__ void sgd_momentum(
          i64 n, float lr, float momentum, float decay, float scale,
          float* p, const float* g, float* v) {
        i64 i = INDEX;
        if (i < n) {
          float d = g[i] * scale + decay * p[i];
          float u = momentum * v[i] + d;
          v[i] = u;
          p[i] -= lr * u;
        }
      }
      """;

  static final String[] NAMES = {
    "relu_forward",
    "relu_backward",
    "bias_forward",
    "channel_sum",
    "max_pool_forward",
    "max_pool_backward",
    "global_average_forward",
    "global_average_backward",
    "add_forward",
    "pass_gradient",
    "softmax_cross_entropy",
    "mean_loss",
    "sgd_momentum"
  };

  private final Map<String, Long> functions = new HashMap<>();

  /**
   * Compiles the kernels for one architecture and loads them into the current context.
   *
   * @param major the device's compute capability, major
   * @param minor and minor
   */
  Kernels(int major, int minor) {
    final byte[] cubin = compile("sm_" + major + minor);
    final Memory image = new Memory(cubin.length);
    image.write(0, cubin, 0, cubin.length);
    final long[] module = new long[1];
    Driver.check(Driver.cuModuleLoadData(module, image), "cuModuleLoadData(the engine's kernels)");
    for (String name : NAMES) {
      final long[] function = new long[1];
      Driver.check(
          Driver.cuModuleGetFunction(function, module[0], name),
          "cuModuleGetFunction(" + name + ")");
      functions.put(name, function[0]);
    }
  }

  /**
   * @param name one of {@link #NAMES}
   * @return its handle
   */
  long function(String name) {
    final Long function = functions.get(name);
    if (function == null) {
      throw new IllegalArgumentException("no kernel " + name);
    }
    return function;
  }

  /** Compiles {@link #SOURCE} to machine code for one architecture, e.g. {@code sm_90}. */
  static byte[] compile(String architecture) {
    final long[] program = new long[1];
    Nvrtc.check(
        Nvrtc.nvrtcCreateProgram(program, SOURCE, "lockstep_kernels.cu", 0, null, null),
        "nvrtcCreateProgram");
    try {
      final String[] options = {"--gpu-architecture=" + architecture, "--std=c++17"};
      final int result =
          Nvrtc.nvrtcCompileProgram(program[0], options.length, new StringArray(options));
      if (result != 0) {
        throw new CudaException(
            "NVRTC could not compile the engine's kernels for "
                + architecture
                + " ("
                + Nvrtc.nvrtcGetErrorString(result)
                + "): "
                + log(program[0]).replace('\n', ' '));
      }
      final long[] size = new long[1];
      Nvrtc.check(Nvrtc.nvrtcGetCUBINSize(program[0], size), "nvrtcGetCUBINSize");
      final Memory cubin = new Memory(size[0]);
      Nvrtc.check(Nvrtc.nvrtcGetCUBIN(program[0], cubin), "nvrtcGetCUBIN");
      return cubin.getByteArray(0, (int) size[0]);
    } finally {
      Nvrtc.nvrtcDestroyProgram(program);
    }
  }

  private static String log(long program) {
    final long[] size = new long[1];
    if (Nvrtc.nvrtcGetProgramLogSize(program, size) != 0 || size[0] <= 1) {
      return "no log";
    }
    final byte[] log = new byte[(int) size[0]];
    Nvrtc.nvrtcGetProgramLog(program, log);
    return new String(log, 0, log.length - 1, StandardCharsets.UTF_8).trim();
  }
}
