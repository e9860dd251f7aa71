# The runs of call 2 (sourced by run2.sh). N = the new default recipe, spelled out (LearnerConfig() is the same).
N="r=16,embedding_r=96,output_bias=false,use_rslora=true,lora_alpha=16,loraplus_lr_ratio=16,lr_schedule=cosine,warmup_ratio=0.05,min_lr_ratio=0.1,route_margin=0.05,route_windows=4,learning_rate=0.0005"
for s in 0 1 2; do
  run a_n_$s --strategies adapter-per-domain --seeds $s --set $N --tag ""
done
for s in 1 2; do
  run a_nb_$s --strategies adapter-per-domain --seeds $s --set $N,output_bias=true --tag "r16 emb96 bias"
done
for n in autonomous_lr neuromodulation hippocampus sleep; do
  run n_$n --strategies "" --neuro $n --neuro-strategy adapter-per-domain --seeds 0 --set $N --tag ""
done
facts f_n --set $N --tag "default"
