// generated with brms 2.18.0
functions {
}
data {
  int<lower=1> N;  // total number of observations
  vector[N] Y;  // response variable
  int<lower=1> K_Asym;  // number of population-level effects
  matrix[N, K_Asym] X_Asym;  // population-level design matrix
  int<lower=1> K_xmid;  // number of population-level effects
  matrix[N, K_xmid] X_xmid;  // population-level design matrix
  int<lower=1> K_scal;  // number of population-level effects
  matrix[N, K_scal] X_scal;  // population-level design matrix
  // covariate vectors for non-linear functions
  vector[N] C_1;
  // data for group-level effects of ID 1
  int<lower=1> N_1;  // number of grouping levels
  int<lower=1> M_1;  // number of coefficients per level
  int<lower=1> J_1[N];  // grouping indicator per observation
  // group-level predictor values
  vector[N] Z_1_Asym_1;
  int prior_only;  // should the likelihood be ignored?
}
transformed data {
}
parameters {
  vector[K_Asym] b_Asym;  // population-level effects
  vector[K_xmid] b_xmid;  // population-level effects
  vector[K_scal] b_scal;  // population-level effects
  real<lower=0> sigma;  // dispersion parameter
  vector<lower=0>[M_1] sd_1;  // group-level standard deviations
  vector[N_1] z_1[M_1];  // standardized group-level effects
}
transformed parameters {
  vector[N_1] r_1_Asym_1;  // actual group-level effects
  real lprior = 0;  // prior contributions to the log posterior
  r_1_Asym_1 = (sd_1[1] * (z_1[1]));
  lprior += normal_lpdf(b_Asym | 200, 50);
  lprior += normal_lpdf(b_xmid | 700, 200);
  lprior += normal_lpdf(b_scal | 350, 100);
  lprior += student_t_lpdf(sigma | 3, 0, 20)
    - 1 * student_t_lccdf(0 | 3, 0, 20);
  lprior += student_t_lpdf(sd_1 | 3, 0, 40)
    - 1 * student_t_lccdf(0 | 3, 0, 40);
}
model {
  // likelihood including constants
  if (!prior_only) {
    // initialize linear predictor term
    vector[N] nlp_Asym = rep_vector(0.0, N);
    // initialize linear predictor term
    vector[N] nlp_xmid = rep_vector(0.0, N);
    // initialize linear predictor term
    vector[N] nlp_scal = rep_vector(0.0, N);
    // initialize non-linear predictor term
    vector[N] mu;
    nlp_Asym += X_Asym * b_Asym;
    nlp_xmid += X_xmid * b_xmid;
    nlp_scal += X_scal * b_scal;
    for (n in 1:N) {
      // add more terms to the linear predictor
      nlp_Asym[n] += r_1_Asym_1[J_1[n]] * Z_1_Asym_1[n];
    }
    for (n in 1:N) {
      // compute non-linear predictor values
      mu[n] = nlp_Asym[n] / (1 + exp((nlp_xmid[n] - C_1[n]) / nlp_scal[n]));
    }
    target += normal_lpdf(Y | mu, sigma);
  }
  // priors including constants
  target += lprior;
  target += std_normal_lpdf(z_1[1]);
}
generated quantities {
}

