package io.lockstep.models;

import io.lockstep.conf.JobConfig;
import io.lockstep.conf.Keys;
import java.util.Map;
import org.deeplearning4j.nn.graph.ComputationGraph;

/** Zoo networks for the tests, built and initialized as a job would build them. */
final class Networks {
  private Networks() {}

  static ComputationGraph of(String model) {
    final ComputationGraph network =
        new ComputationGraph(
            ModelZoo.configuration(
                JobConfig.load(JobConfig.overrides(Map.of(Keys.MODEL_NAME.name(), model))), 10));
    network.init();
    return network;
  }
}
