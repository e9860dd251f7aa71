# The runs of call 2 (sourced by run2.sh with RUNS=runs3.sh): three seeds of the new default (spelled out; LearnerConfig() is
# the same) and fact recall with it. The neuro rows were measured in call 1 on the r24 default (device time ran short).
N="r=16,embedding_r=96,output_bias=false,use_rslora=true,lora_alpha=16,loraplus_lr_ratio=16,lr_schedule=cosine,warmup_ratio=0.05,min_lr_ratio=0.1,route_margin=0.05,route_windows=4,learning_rate=0.0005"
for s in 0 1 2; do
  run a_n_$s --strategies adapter-per-domain --seeds $s --set $N --tag ""
done
facts f_n --set $N --tag "default"
