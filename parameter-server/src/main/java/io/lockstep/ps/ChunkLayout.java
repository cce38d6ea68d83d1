package io.lockstep.ps;

/**
 * How a flat vector of {@code parameterCount} floats is cut into chunks of at most {@code
 * chunkFloats}: chunk {@code c} covers floats {@code [c * chunkFloats, min(P, (c + 1) *
 * chunkFloats))}.
 */
record ChunkLayout(int parameterCount, int chunkFloats) {
  ChunkLayout {
    if (parameterCount <= 0 || chunkFloats <= 0) {
      throw new IllegalArgumentException(
          "parameterCount=" + parameterCount + " and chunkFloats=" + chunkFloats + " must be > 0");
    }
  }

  int chunkCount() {
    return (int) (((long) parameterCount + chunkFloats - 1) / chunkFloats);
  }

  int offsetBytes(int chunk) {
    return chunk * chunkFloats * Float.BYTES;
  }

  int lengthBytes(int chunk) {
    final int first = chunk * chunkFloats;
    return Math.min(chunkFloats, parameterCount - first) * Float.BYTES;
  }
}
