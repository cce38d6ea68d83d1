package io.lockstep.conf;

/**
 * Which frames carry a MAC under the job's key ({@code lockstep.ps.frame-tags}).
 *
 * <p>On IPC every frame passes through the job's Aeron directory, which only the job's user can
 * enter; whoever can write a frame there can also read the key (the secret file, or the JVMs'
 * memory through the attach API). A tag would stop nobody the directory lets in, so {@link
 * #NETWORK} leaves IPC frames untagged and tags what crosses a network.
 */
public enum FrameTags {
  /** Frames that cross a network ({@link Transport#UDP}); IPC frames go untagged. */
  NETWORK,
  /**
   * Every frame, IPC included: for a host whose other processes of the same user are not trusted.
   */
  ALWAYS,
  /** No frame: for a network where every host is trusted. */
  OFF;

  /**
   * @param transport how the workers reach the server
   * @return whether frames on it carry a tag
   */
  public boolean on(Transport transport) {
    return switch (this) {
      case NETWORK -> transport == Transport.UDP;
      case ALWAYS -> true;
      case OFF -> false;
    };
  }
}
