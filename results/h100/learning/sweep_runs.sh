# The runs of call 1 (sourced by run_sweep.sh), full mode: adapter recipes on seed 0; the first recipe and the
# references on seeds 0, 1, 2.
A="--strategies adapter-per-domain"
COS="lr_schedule=cosine,warmup_ratio=0.05,lora_alpha=16"
RS="r=24,use_rslora=true"
EXP="lr_schedule=cosine,warmup_ratio=0.05"
for s in 0 1 2; do
  run a_r24c_$s $A --seeds $s --set $RS,learning_rate=0.002,$COS --tag "r24 rs lr2e-3 cos"
  run e_cos_$s  --strategies expert --seeds $s --set $EXP --tag ""
  run j_cos_$s  --strategies joint --seeds $s --set $EXP --tag ""
done
A="$A --seeds 0"
run a_old  $A --set r=8,lora_alpha=16,learning_rate=0.005,lr_schedule=constant,use_rslora=false --tag "r8 lr5e-3 const, the old default"
run a_r24h $A --set $RS,learning_rate=0.005,$COS --tag "r24 rs lr5e-3 cos"
run a_r24k $A --set $RS,learning_rate=0.002,lora_alpha=16,lr_schedule=constant --tag "r24 rs lr2e-3 const"
run a_lp16 $A --set $RS,learning_rate=0.0005,loraplus_lr_ratio=16,$COS --tag "r24 rs lr5e-4 lora+16 cos"
run a_norm $A --set $RS,learning_rate=0.002,modules_to_save=norm,$COS --tag "r24 rs lr2e-3 cos norms"
run a_piss $A --set $RS,learning_rate=0.002,init_lora_weights=pissa,$COS --tag "r24 rs lr2e-3 cos pissa"
run a_r64  $A --set r=64,use_rslora=true,learning_rate=0.002,$COS --tag "r64 rs lr2e-3 cos, over budget"
run a_stop $A --set $RS,learning_rate=0.005,holdout_fraction=0.05,$COS --tag "r24 rs lr5e-3 cos early-stop"
run e_c1e3 --strategies expert --seeds 0 --set learning_rate=0.001,$EXP --tag "lr1e-3 cos"
