package io.lockstep.conf;

/** How the driver shows an epoch's progress on its console ({@code lockstep.run.progress}). */
public enum ProgressDisplay {
  /** A bar when the error stream is a terminal, plain lines otherwise. */
  AUTO,
  /** A bar redrawn in place. */
  BAR,
  /** A log line every ten seconds or so. */
  LINES,
  /** Nothing but the epoch summaries. */
  NONE
}
