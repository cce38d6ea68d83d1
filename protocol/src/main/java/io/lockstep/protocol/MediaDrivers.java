package io.lockstep.protocol;

import io.aeron.Aeron;
import io.aeron.driver.Configuration;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import java.nio.file.Path;
import java.time.Duration;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The embedded media drivers every Lockstep process runs (server, shard process, worker) and the
 * clients that attach to them, configured alike on both ends of every channel.
 */
public final class MediaDrivers {
  private static final Logger LOG = LoggerFactory.getLogger(MediaDrivers.class);

  /**
   * How long a media driver and its clients wait to hear from each other before they give each
   * other up: 30 s, not Aeron's 10. On a loaded 2-core host a JVM can go unscheduled, or wait at a
   * safepoint, for longer than 10 s; a step that times out is retried, while Aeron's default for a
   * client that loses its driver is to end the whole JVM.
   */
  static final Duration LIVENESS_TIMEOUT = Duration.ofSeconds(30);

  private MediaDrivers() {}

  /**
   * Launches an embedded media driver for this process, in the shared threading mode so it costs
   * one thread, backing off when idle because training needs the cores; its directory is its user's
   * alone ({@link AeronDirectories#restrict}); its UDP sockets' buffers hold every worker's window
   * ({@link SocketBuffers}).
   *
   * @param directory the driver's Aeron directory
   * @param termLengthBytes the term length of its IPC and UDP publications
   * @param udp whether it will open UDP sockets, not only IPC
   * @return the running driver
   */
  public static MediaDriver launch(String directory, int termLengthBytes, boolean udp) {
    final Path path = Path.of(directory).toAbsolutePath();
    if (path.getParent() != null) {
      AeronDirectories.removeStale(path.getParent());
    }
    AeronDirectories.own(path);
    final MediaDriver.Context context =
        new MediaDriver.Context()
            .aeronDirectoryName(directory)
            .dirDeleteOnStart(true)
            .dirDeleteOnShutdown(true)
            .threadingMode(ThreadingMode.SHARED)
            .sharedIdleStrategy(new BackoffIdleStrategy())
            .ipcTermBufferLength(termLengthBytes)
            .publicationTermBufferLength(termLengthBytes)
            .termBufferSparseFile(true)
            .socketSndbufLength(SocketBuffers.sendBytes(udp))
            .socketRcvbufLength(
                SocketBuffers.receiveBytes(Configuration.INITIAL_WINDOW_LENGTH_DEFAULT, udp))
            .clientLivenessTimeoutNs(LIVENESS_TIMEOUT.toNanos())
            // Aeron requires it longer than the clients' liveness, as its defaults are (15 s, 10 s)
            .publicationUnblockTimeoutNs(LIVENESS_TIMEOUT.plusSeconds(15).toNanos())
            .driverTimeoutMs(LIVENESS_TIMEOUT.toMillis());
    final MediaDriver driver = MediaDriver.launch(context);
    try {
      AeronDirectories.restrict(path);
    } catch (IllegalStateException e) {
      driver.close();
      throw e;
    }
    return driver;
  }

  /**
   * A client context for the media driver at {@code directory}: Aeron's errors are logged, and a
   * lost driver closes the client, failing what uses it (the step, then the stage, which the driver
   * retries with a new server) instead of Aeron's default, {@code System.exit(-1)} with a banner on
   * stderr.
   */
  public static Aeron.Context clientContext(String directory) {
    return new Aeron.Context()
        .aeronDirectoryName(directory)
        .driverTimeoutMs(LIVENESS_TIMEOUT.toMillis())
        .errorHandler(error -> LOG.error("Aeron client of {}: {}", directory, error.toString()));
  }
}
