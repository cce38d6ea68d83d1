package io.lockstep.ps;

import io.aeron.Image;
import java.util.List;
import java.util.StringJoiner;

/**
 * Where each worker's frames come from, as Aeron names the source of its stream (an address and
 * port for UDP), so that an error about a stalled worker says which machine to look at.
 */
final class WorkerSources {
  private static final String IPC = "aeron:ipc";

  private final String[] sources;

  WorkerSources(int workers) {
    this.sources = new String[workers];
  }

  /** Notes the source of a frame accepted from {@code rank}; only the first one is kept. */
  void heard(int rank, Image image) {
    if (sources[rank] == null) {
      sources[rank] = image.sourceIdentity();
    }
  }

  /**
   * The ranks with their sources, for an error message.
   *
   * @param ranks the workers to name
   * @return such as {@code [1 (from 10.0.0.7:40123), 2 (never heard from)]}
   */
  String describe(List<Integer> ranks) {
    final StringJoiner text = new StringJoiner(", ", "[", "]");
    for (int rank : ranks) {
      final String source = sources[rank];
      text.add(
          rank
              + (source == null
                  ? " (never heard from)"
                  : IPC.equals(source) ? " (this host, IPC)" : " (from " + source + ")"));
    }
    return text.toString();
  }
}
