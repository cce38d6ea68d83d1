package io.lockstep.cuda;

import java.util.List;

/**
 * The semantics of a {@link Network} on the CPU, in double precision and plain loops: one forward
 * and backward pass of the mean softmax cross-entropy. Slow by design; it is what the CUDA engine's
 * description means, for checking descriptions and adapters where there is no GPU.
 */
public final class ReferenceEngine {
  private final Network network;
  private final int[][] shapes;
  private final List<Network.Parameter> parameterList;

  /**
   * @param network what to compute
   */
  public ReferenceEngine(Network network) {
    this.network = network;
    this.shapes = network.shapes();
    this.parameterList = network.parameters();
  }

  /**
   * A forward and backward pass.
   *
   * @param parameters the flat parameter vector
   * @param images {@code batch * c * h * w} values, NCHW
   * @param labels each sample's class
   * @param gradient receives d(mean loss)/d(parameters), same layout
   * @return the batch's mean loss
   */
  public double lossAndGradient(
      double[] parameters, double[] images, int[] labels, double[] gradient) {
    final int batch = labels.length;
    final List<Network.Node> nodes = network.nodes();
    final int count = nodes.size() + 1;
    final double[][] out = new double[count][];
    final double[][] grad = new double[count][];
    final double[][] saved = new double[count][];
    out[0] = images;
    final int[] offsets = new int[nodes.size()];
    int next = 0;
    for (int i = 0; i < nodes.size(); i++) {
      final Network.Node node = nodes.get(i);
      offsets[i] = -1;
      if (node instanceof Network.Conv
          || node instanceof Network.BatchNorm
          || node instanceof Network.Dense) {
        offsets[i] = parameterList.get(next).offset();
        next += hasBias(node) ? 2 : 1;
      }
    }
    for (int i = 0; i < nodes.size(); i++) {
      final Network.Node node = nodes.get(i);
      final int in = node.inputs()[0] + 1;
      final int[] s = shapes[in];
      final int[] o = shapes[i + 1];
      final double[] x = out[in];
      final double[] y = new double[batch * o[0] * o[1] * o[2]];
      if (node instanceof Network.Conv c) {
        conv(x, y, parameters, offsets[i], c, batch, s, o);
      } else if (node instanceof Network.BatchNorm) {
        saved[i + 1] = normForward(x, y, parameters, offsets[i], batch, s);
      } else if (node instanceof Network.Relu) {
        for (int j = 0; j < y.length; j++) {
          y[j] = Math.max(0, x[j]);
        }
      } else if (node instanceof Network.MaxPool m) {
        saved[i + 1] = maxPool(x, y, m, batch, s, o);
      } else if (node instanceof Network.GlobalAverage) {
        final int inner = s[1] * s[2];
        for (int p = 0; p < batch * s[0]; p++) {
          double sum = 0;
          for (int k = 0; k < inner; k++) {
            sum += x[p * inner + k];
          }
          y[p] = sum / inner;
        }
      } else if (node instanceof Network.Dense d) {
        dense(x, y, parameters, offsets[i], d, batch, s[0] * s[1] * s[2]);
      } else if (node instanceof Network.Add a) {
        final double[] z = out[a.right() + 1];
        for (int j = 0; j < y.length; j++) {
          y[j] = x[j] + z[j];
        }
      }
      out[i + 1] = y;
    }
    final int classes = network.classes();
    final double[] logits = out[count - 1];
    final double[] dLogits = new double[logits.length];
    double loss = 0;
    for (int n = 0; n < batch; n++) {
      double max = Double.NEGATIVE_INFINITY;
      for (int k = 0; k < classes; k++) {
        max = Math.max(max, logits[n * classes + k]);
      }
      double sum = 0;
      for (int k = 0; k < classes; k++) {
        sum += Math.exp(logits[n * classes + k] - max);
      }
      loss += max + Math.log(sum) - logits[n * classes + labels[n]];
      for (int k = 0; k < classes; k++) {
        final double q = Math.exp(logits[n * classes + k] - max) / sum - (k == labels[n] ? 1 : 0);
        dLogits[n * classes + k] = q / batch;
      }
    }
    grad[count - 1] = dLogits;
    java.util.Arrays.fill(gradient, 0);
    for (int i = nodes.size() - 1; i >= 0; i--) {
      final Network.Node node = nodes.get(i);
      final int in = node.inputs()[0] + 1;
      final int[] s = shapes[in];
      final int[] o = shapes[i + 1];
      final double[] dy = grad[i + 1];
      if (dy == null) {
        continue;
      }
      final double[] dx = gradientOf(grad, in, batch * s[0] * s[1] * s[2]);
      final double[] x = out[in];
      if (node instanceof Network.Conv c) {
        convBackward(x, dy, dx, parameters, gradient, offsets[i], c, batch, s, o);
      } else if (node instanceof Network.BatchNorm) {
        normBackward(x, dy, dx, parameters, gradient, offsets[i], saved[i + 1], batch, s);
      } else if (node instanceof Network.Relu) {
        for (int j = 0; j < dy.length; j++) {
          dx[j] += x[j] > 0 ? dy[j] : 0;
        }
      } else if (node instanceof Network.MaxPool) {
        final double[] argmax = saved[i + 1];
        final int plane = s[1] * s[2];
        final int outPlane = o[1] * o[2];
        for (int j = 0; j < dy.length; j++) {
          dx[(j / outPlane) * plane + (int) argmax[j]] += dy[j];
        }
      } else if (node instanceof Network.GlobalAverage) {
        final int inner = s[1] * s[2];
        for (int j = 0; j < dx.length; j++) {
          dx[j] += dy[j / inner] / inner;
        }
      } else if (node instanceof Network.Dense d) {
        denseBackward(x, dy, dx, parameters, gradient, offsets[i], d, batch, s[0] * s[1] * s[2]);
      } else if (node instanceof Network.Add a) {
        final double[] dz = gradientOf(grad, a.right() + 1, dy.length);
        for (int j = 0; j < dy.length; j++) {
          dx[j] += dy[j];
          dz[j] += dy[j];
        }
      }
    }
    return loss / batch;
  }

  private static double[] gradientOf(double[][] grad, int index, int size) {
    if (grad[index] == null) {
      grad[index] = new double[size];
    }
    return grad[index];
  }

  private static boolean hasBias(Network.Node node) {
    if (node instanceof Network.Conv c) {
      return c.bias();
    } else if (node instanceof Network.Dense d) {
      return d.bias();
    }
    return true;
  }

  private static void conv(
      double[] x, double[] y, double[] p, int w, Network.Conv c, int batch, int[] s, int[] o) {
    final int k = c.kernel();
    final int bias = w + o[0] * s[0] * k * k;
    for (int n = 0; n < batch; n++) {
      for (int f = 0; f < o[0]; f++) {
        for (int oy = 0; oy < o[1]; oy++) {
          for (int ox = 0; ox < o[2]; ox++) {
            double sum = c.bias() ? p[bias + f] : 0;
            for (int ch = 0; ch < s[0]; ch++) {
              for (int ky = 0; ky < k; ky++) {
                final int iy = oy * c.stride() - c.pad() + ky;
                if (iy < 0 || iy >= s[1]) {
                  continue;
                }
                for (int kx = 0; kx < k; kx++) {
                  final int ix = ox * c.stride() - c.pad() + kx;
                  if (ix >= 0 && ix < s[2]) {
                    sum +=
                        p[w + ((f * s[0] + ch) * k + ky) * k + kx]
                            * x[((n * s[0] + ch) * s[1] + iy) * s[2] + ix];
                  }
                }
              }
            }
            y[((n * o[0] + f) * o[1] + oy) * o[2] + ox] = sum;
          }
        }
      }
    }
  }

  private static void convBackward(
      double[] x,
      double[] dy,
      double[] dx,
      double[] p,
      double[] g,
      int w,
      Network.Conv c,
      int batch,
      int[] s,
      int[] o) {
    final int k = c.kernel();
    final int bias = w + o[0] * s[0] * k * k;
    for (int n = 0; n < batch; n++) {
      for (int f = 0; f < o[0]; f++) {
        for (int oy = 0; oy < o[1]; oy++) {
          for (int ox = 0; ox < o[2]; ox++) {
            final double d = dy[((n * o[0] + f) * o[1] + oy) * o[2] + ox];
            if (c.bias()) {
              g[bias + f] += d;
            }
            for (int ch = 0; ch < s[0]; ch++) {
              for (int ky = 0; ky < k; ky++) {
                final int iy = oy * c.stride() - c.pad() + ky;
                if (iy < 0 || iy >= s[1]) {
                  continue;
                }
                for (int kx = 0; kx < k; kx++) {
                  final int ix = ox * c.stride() - c.pad() + kx;
                  if (ix >= 0 && ix < s[2]) {
                    final int wi = w + ((f * s[0] + ch) * k + ky) * k + kx;
                    final int xi = ((n * s[0] + ch) * s[1] + iy) * s[2] + ix;
                    g[wi] += d * x[xi];
                    dx[xi] += d * p[wi];
                  }
                }
              }
            }
          }
        }
      }
    }
  }

  /** Returns {mean, inverse std} per channel, then x-hat. */
  private static double[] normForward(
      double[] x, double[] y, double[] p, int gamma, int batch, int[] s) {
    final int channels = s[0];
    final int inner = s[1] * s[2];
    final int count = batch * inner;
    final double[] saved = new double[2 * channels + x.length];
    for (int ch = 0; ch < channels; ch++) {
      double mean = 0;
      for (int n = 0; n < batch; n++) {
        for (int k = 0; k < inner; k++) {
          mean += x[(n * channels + ch) * inner + k];
        }
      }
      mean /= count;
      double variance = 0;
      for (int n = 0; n < batch; n++) {
        for (int k = 0; k < inner; k++) {
          final double d = x[(n * channels + ch) * inner + k] - mean;
          variance += d * d;
        }
      }
      variance /= count;
      final double inverse = 1 / Math.sqrt(variance + Network.NORM_EPSILON);
      saved[ch] = mean;
      saved[channels + ch] = inverse;
      for (int n = 0; n < batch; n++) {
        for (int k = 0; k < inner; k++) {
          final int j = (n * channels + ch) * inner + k;
          final double hat = (x[j] - mean) * inverse;
          saved[2 * channels + j] = hat;
          y[j] = p[gamma + ch] * hat + p[gamma + channels + ch];
        }
      }
    }
    return saved;
  }

  private static void normBackward(
      double[] x,
      double[] dy,
      double[] dx,
      double[] p,
      double[] g,
      int gamma,
      double[] saved,
      int batch,
      int[] s) {
    final int channels = s[0];
    final int inner = s[1] * s[2];
    final int count = batch * inner;
    for (int ch = 0; ch < channels; ch++) {
      double sumDy = 0;
      double sumDyHat = 0;
      for (int n = 0; n < batch; n++) {
        for (int k = 0; k < inner; k++) {
          final int j = (n * channels + ch) * inner + k;
          sumDy += dy[j];
          sumDyHat += dy[j] * saved[2 * channels + j];
        }
      }
      g[gamma + ch] += sumDyHat;
      g[gamma + channels + ch] += sumDy;
      final double scale = p[gamma + ch] * saved[channels + ch] / count;
      for (int n = 0; n < batch; n++) {
        for (int k = 0; k < inner; k++) {
          final int j = (n * channels + ch) * inner + k;
          dx[j] += scale * (count * dy[j] - sumDy - saved[2 * channels + j] * sumDyHat);
        }
      }
    }
  }

  /** Returns each output's argmax within its input plane. */
  private static double[] maxPool(
      double[] x, double[] y, Network.MaxPool m, int batch, int[] s, int[] o) {
    final double[] argmax = new double[y.length];
    for (int plane = 0; plane < batch * s[0]; plane++) {
      for (int oy = 0; oy < o[1]; oy++) {
        for (int ox = 0; ox < o[2]; ox++) {
          final int y0 = Math.max(0, oy * m.stride() - m.pad());
          final int x0 = Math.max(0, ox * m.stride() - m.pad());
          final int y1 = Math.min(s[1], oy * m.stride() - m.pad() + m.kernel());
          final int x1 = Math.min(s[2], ox * m.stride() - m.pad() + m.kernel());
          double best = Double.NEGATIVE_INFINITY;
          int at = y0 * s[2] + x0;
          for (int iy = y0; iy < y1; iy++) {
            for (int ix = x0; ix < x1; ix++) {
              final double v = x[plane * s[1] * s[2] + iy * s[2] + ix];
              if (v > best) {
                best = v;
                at = iy * s[2] + ix;
              }
            }
          }
          final int j = (plane * o[1] + oy) * o[2] + ox;
          y[j] = best;
          argmax[j] = at;
        }
      }
    }
    return argmax;
  }

  private static void dense(
      double[] x, double[] y, double[] p, int w, Network.Dense d, int batch, int k) {
    final int m = d.outputs();
    for (int n = 0; n < batch; n++) {
      for (int j = 0; j < m; j++) {
        double sum = d.bias() ? p[w + m * k + j] : 0;
        for (int i = 0; i < k; i++) {
          sum += x[n * k + i] * p[w + j * k + i];
        }
        y[n * m + j] = sum;
      }
    }
  }

  private static void denseBackward(
      double[] x,
      double[] dy,
      double[] dx,
      double[] p,
      double[] g,
      int w,
      Network.Dense d,
      int batch,
      int k) {
    final int m = d.outputs();
    for (int n = 0; n < batch; n++) {
      for (int j = 0; j < m; j++) {
        final double e = dy[n * m + j];
        if (d.bias()) {
          g[w + m * k + j] += e;
        }
        for (int i = 0; i < k; i++) {
          g[w + j * k + i] += e * x[n * k + i];
          dx[n * k + i] += e * p[w + j * k + i];
        }
      }
    }
  }
}
