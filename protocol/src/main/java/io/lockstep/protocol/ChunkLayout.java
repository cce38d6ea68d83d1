package io.lockstep.protocol;

/**
 * How a flat vector of {@code parameterCount} floats is cut into chunks of at most {@code
 * chunkFloats}: chunk {@code c} covers floats {@code [c * chunkFloats, min(P, (c + 1) *
 * chunkFloats))}.
 *
 * <p>A step's chunks travel newest first: chunk {@code count - 1} down to chunk 0, the order in
 * which a backward pass finishes them (it runs from the last layer to the first, and the parameters
 * lie in layer order), so a worker can send a chunk while it still computes the ones before it.
 */
public record ChunkLayout(int parameterCount, int chunkFloats) {
  public ChunkLayout {
    if (parameterCount <= 0 || chunkFloats <= 0) {
      throw new IllegalArgumentException(
          "parameterCount=" + parameterCount + " and chunkFloats=" + chunkFloats + " must be > 0");
    }
  }

  public int chunkCount() {
    return (int) (((long) parameterCount + chunkFloats - 1) / chunkFloats);
  }

  /**
   * The chunk that travels at {@code position} within a step.
   *
   * @param position 0 for the first chunk sent
   * @return the chunk's index
   */
  public int chunkSentAt(int position) {
    return chunkCount() - 1 - position;
  }

  public int offsetBytes(int chunk) {
    return chunk * chunkFloats * Float.BYTES;
  }

  public int lengthBytes(int chunk) {
    final int first = chunk * chunkFloats;
    return Math.min(chunkFloats, parameterCount - first) * Float.BYTES;
  }
}
