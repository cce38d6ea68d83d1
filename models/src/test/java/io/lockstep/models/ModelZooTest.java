package io.lockstep.models;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The zoo's models as the seeds and torchvision define them. */
class ModelZooTest {

  private static ComputationGraph network(String model) {
    return Networks.of(model);
  }

  @Test
  void lenetForCifarIsTheTutorialsNetwork() {
    final ComputationGraph network = network("lenet-cifar");
    // conv1 3*6*25+6, conv2 6*16*25+16, fc1 400*120+120, fc2 120*84+84, fc3 84*10+10
    assertEquals(456 + 2_416 + 48_120 + 10_164 + 850, network.numParams());
    assertArrayEquals(new long[] {6, 3, 5, 5}, network.getLayer("conv1").getParam("W").shape());
    assertArrayEquals(new long[] {400, 120}, network.getLayer("fc1").getParam("W").shape());
    final INDArray images = Nd4j.rand(DataType.FLOAT, 4, 3, 32, 32);
    final INDArray out = network.outputSingle(images);
    assertArrayEquals(new long[] {4, 10}, out.shape());
    final ModelZoo.Spec spec = ModelZoo.spec("lenet-cifar");
    assertEquals(new ModelZoo.Spec("lenet-cifar", 3, 32, 32, 10), spec);
  }

  @Test
  void lenetForMnistKeepsItsParameterCount() {
    assertEquals(431_080, network("lenet").numParams());
  }
}
