/**
 * Every file of a run directory, with no Spark in it: the layout and names ({@link
 * io.lockstep.run.RunDirectory}), atomic writes ({@link io.lockstep.run.RunFiles}), the step and
 * epoch metrics, the timeline, the checkpoint, the summary, the HTML report and the comparison of
 * two runs. The driver writes a run through these types; {@code bin/lockstep compare} and {@code
 * report} read one back.
 */
package io.lockstep.run;
