package io.lockstep.conf;

/** How workers reach the parameter server. */
public enum Transport {
  /** Aeron IPC through a shared media driver: every worker on the server's host. */
  IPC,
  /** Aeron UDP unicast to the server, multi-destination cast back: workers on any host. */
  UDP
}
