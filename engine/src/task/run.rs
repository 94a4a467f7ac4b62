//! The task loop.

use arrow::array::RecordBatch;
use weir_exchange::event::batch_data_bytes;
use weir_exchange::{Event, PartitionRouter, cpu};

use super::chain::{ChainOutput, OperatorChain};
use super::input::InputGates;
use super::metrics::{TaskMetrics, TaskReport};
use super::output::OutputWriter;
use super::{InputChannel, OutputTarget, TaskDeployment, TaskInfo};
use crate::{Error, Result, Sink, Source};

/// Runs one subtask attempt to its end.
///
/// Reads the source or the input gates until every input ended, then
/// finishes the chain, completes every output (end of partition on pipelined
/// channels, a complete file for blocking partitions) and finishes the sink.
/// When the task fails, its partial blocking files are discarded; when the
/// returned future is dropped (cancellation), nothing it wrote becomes
/// visible.
///
/// # Errors
/// The first error of the source, an operator, an input, an output or the
/// sink; or the injected failure of a test.
pub async fn run_task(deployment: TaskDeployment) -> Result<TaskReport> {
    let TaskDeployment {
        info,
        chain,
        inputs,
        outputs,
        fail_at_record,
    } = deployment;
    let operators = chain
        .operators
        .iter()
        .map(|f| f.create(&info))
        .collect::<Result<Vec<_>>>()?;
    let source = chain.source.as_ref().map(|s| s.create(&info)).transpose()?;
    let sink = chain.sink.as_ref().map(|s| s.create(&info)).transpose()?;
    let routers = outputs
        .iter()
        .map(|o| {
            let subpartitions = match &o.target {
                OutputTarget::Pipelined(senders) => senders.len(),
                OutputTarget::Blocking {
                    num_subpartitions, ..
                } => *num_subpartitions,
            };
            PartitionRouter::new(
                o.partitioner.clone(),
                subpartitions,
                info.subtask + info.attempt as usize,
            )
        })
        .collect();
    let mut task = Task {
        info,
        cpu: Some(CpuState {
            chain: OperatorChain::new(operators),
            routers,
        }),
        writers: outputs.into_iter().map(OutputWriter::new).collect(),
        sink,
        metrics: TaskMetrics::default(),
        fail_at_record,
    };
    match task.run(source, inputs).await {
        Ok(()) => task.complete().await,
        Err(e) => {
            for writer in task.writers {
                writer.abort().await;
            }
            Err(e)
        }
    }
}

/// What runs on the CPU pool: the chain and the partitioners. It moves to a
/// pool thread for every event and back.
struct CpuState {
    chain: OperatorChain,
    routers: Vec<PartitionRouter>,
}

/// A chain's output, split for every output edge.
struct Routed {
    pieces: Vec<Vec<(usize, RecordBatch)>>,
    batches: Vec<RecordBatch>,
    watermark: Option<i64>,
}

impl CpuState {
    fn route(&mut self, out: ChainOutput) -> Result<Routed> {
        let mut pieces = vec![Vec::new(); self.routers.len()];
        for batch in &out.batches {
            for (router, pieces) in self.routers.iter_mut().zip(&mut pieces) {
                pieces.extend(router.route(batch.clone())?);
            }
        }
        Ok(Routed {
            pieces,
            batches: out.batches,
            watermark: out.watermark,
        })
    }
}

struct Task {
    info: TaskInfo,
    cpu: Option<CpuState>,
    writers: Vec<OutputWriter>,
    sink: Option<Box<dyn Sink>>,
    metrics: TaskMetrics,
    fail_at_record: Option<u64>,
}

impl Task {
    async fn run(
        &mut self,
        source: Option<Box<dyn Source>>,
        inputs: Vec<Vec<InputChannel>>,
    ) -> Result<()> {
        if let Some(mut source) = source {
            while let Some(batch) = source.next_batch().await? {
                self.on_batch(0, batch).await?;
            }
        } else {
            self.read_inputs(inputs).await?;
        }
        self.on_cpu(|chain| chain.finish()).await
    }

    async fn read_inputs(&mut self, inputs: Vec<Vec<InputChannel>>) -> Result<()> {
        let mut gates = InputGates::new(inputs);
        let mut open_channels = gates.channels.clone();
        let mut watermarks: Vec<Vec<i64>> =
            gates.channels.iter().map(|&n| vec![i64::MIN; n]).collect();
        let mut watermark = i64::MIN;
        for (input, &n) in gates.channels.iter().enumerate() {
            if n == 0 {
                self.on_cpu(move |chain| chain.end_of_input(input)).await?;
            }
        }
        while let Some(next) = gates.next().await {
            let next = next?;
            let (input, channel) = (next.input, next.channel);
            match next.event {
                Event::Batch(batch) => self.on_batch(input, batch).await?,
                Event::Watermark(w) => {
                    let slot = &mut watermarks[input][channel];
                    *slot = (*slot).max(w);
                    self.advance_watermark(&watermarks, &mut watermark).await?;
                }
                Event::Barrier(barrier) => {
                    self.on_cpu(move |chain| chain.on_barrier(barrier)).await?;
                    for writer in &mut self.writers {
                        writer.broadcast(Event::Barrier(barrier)).await?;
                    }
                }
                Event::EndOfPartition => {
                    watermarks[input][channel] = i64::MAX;
                    open_channels[input] -= 1;
                    if open_channels[input] == 0 {
                        self.on_cpu(move |chain| chain.end_of_input(input)).await?;
                    } else {
                        self.advance_watermark(&watermarks, &mut watermark).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Passes the minimum watermark over all channels on when it advanced.
    async fn advance_watermark(
        &mut self,
        watermarks: &[Vec<i64>],
        current: &mut i64,
    ) -> Result<()> {
        let min = watermarks
            .iter()
            .flatten()
            .copied()
            .min()
            .unwrap_or(i64::MAX);
        if min > *current && min != i64::MAX {
            *current = min;
            self.on_cpu(move |chain| chain.on_watermark(min)).await?;
        }
        Ok(())
    }

    async fn on_batch(&mut self, input: usize, batch: RecordBatch) -> Result<()> {
        let before = self.metrics.rows_in;
        self.metrics.rows_in += batch.num_rows() as u64;
        self.metrics.bytes_in += batch_data_bytes(&batch) as u64;
        if let Some(at) = self.fail_at_record
            && before < at
            && at <= self.metrics.rows_in
        {
            return Err(Error::InjectedFailure {
                task: self.info.to_string(),
                record: at,
            });
        }
        self.on_cpu(move |chain| chain.process_batch(input, batch))
            .await
    }

    /// Runs `work` on the chain on the CPU pool, routes its output there too,
    /// and writes the pieces out.
    async fn on_cpu<F>(&mut self, work: F) -> Result<()>
    where
        F: FnOnce(&mut OperatorChain) -> Result<ChainOutput> + Send + 'static,
    {
        let mut state = self
            .cpu
            .take()
            .expect("the CPU state is home between events");
        let (state, routed) = cpu::run(move || {
            let routed = work(&mut state.chain).and_then(|out| state.route(out));
            (state, routed)
        })
        .await;
        self.cpu = Some(state);
        let routed = routed?;
        for batch in &routed.batches {
            self.metrics.rows_out += batch.num_rows() as u64;
            self.metrics.bytes_out += batch_data_bytes(batch) as u64;
        }
        for (writer, pieces) in self.writers.iter_mut().zip(routed.pieces) {
            for (subpartition, piece) in pieces {
                writer.write(subpartition, piece).await?;
            }
        }
        if let Some(sink) = &mut self.sink {
            for batch in routed.batches {
                sink.write_batch(batch).await?;
            }
        }
        if let Some(w) = routed.watermark {
            for writer in &mut self.writers {
                writer.broadcast(Event::Watermark(w)).await?;
            }
        }
        Ok(())
    }

    /// Completes every output and the sink.
    async fn complete(mut self) -> Result<TaskReport> {
        let mut partitions = Vec::new();
        let mut writers = std::mem::take(&mut self.writers).into_iter();
        while let Some(writer) = writers.next() {
            match writer.finish().await {
                Ok(written) => partitions.extend(written),
                Err(e) => {
                    for rest in writers {
                        rest.abort().await;
                    }
                    return Err(e);
                }
            }
        }
        if let Some(sink) = &mut self.sink {
            sink.finish().await?;
        }
        Ok(TaskReport {
            metrics: self.metrics,
            partitions,
        })
    }
}
