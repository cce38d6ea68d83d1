package io.lockstep.driver;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.lockstep.conf.JobConfig;
import java.util.List;
import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

/** What the driver asks of the executors it gets: their JVM options and environment. */
class SparkConfTest {
  @Test
  void shouldStartExecutorsWithTheOptionsAndAllocatorTheyNeed() {
    final SparkConf conf = SparkSettings.sparkConf(JobConfig.load(), "spark://h0:7077");
    final List<String> options = List.of(conf.get("spark.executor.extraJavaOptions").split(" "));
    assertTrue(options.containsAll(SparkSettings.REQUIRED_JVM_OPTIONS), options.toString());
    assertTrue(options.contains(SparkSettings.YOUNG_GENERATION_OPTION), options.toString());
    assertTrue(options.contains(SparkSettings.HEAP_REGION_OPTION), options.toString());
    assertEquals(SparkSettings.BROADCAST_BLOCK_SIZE, conf.get(SparkSettings.BROADCAST_BLOCK_KEY));
    SparkSettings.ALLOCATOR_ENVIRONMENT.forEach(
        (name, value) -> assertEquals(value, conf.get("spark.executorEnv." + name)));
  }

  @Test
  void shouldKeepTheUsersOwnYoungGenerationAndOptions() {
    System.setProperty(
        "spark.executor.extraJavaOptions", "-Xmn256m -XX:G1HeapRegionSize=8m -Dmine=1");
    System.setProperty(SparkSettings.BROADCAST_BLOCK_KEY, "8m");
    try {
      final SparkConf conf = SparkSettings.sparkConf(JobConfig.load(), "spark://h0:7077");
      final String options = conf.get("spark.executor.extraJavaOptions");
      assertTrue(options.startsWith("-Xmn256m -XX:G1HeapRegionSize=8m -Dmine=1"), options);
      assertTrue(!options.contains(SparkSettings.YOUNG_GENERATION_OPTION), options);
      assertTrue(!options.contains(SparkSettings.HEAP_REGION_OPTION), options);
      assertTrue(options.contains(SparkSettings.REQUIRED_JVM_OPTIONS.get(0)), options);
      assertEquals("8m", conf.get(SparkSettings.BROADCAST_BLOCK_KEY));
    } finally {
      System.clearProperty("spark.executor.extraJavaOptions");
      System.clearProperty(SparkSettings.BROADCAST_BLOCK_KEY);
    }
  }
}
