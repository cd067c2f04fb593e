// generated with brms 2.18.0
functions {
 /* compute correlated group-level effects
  * Args:
  *   z: matrix of unscaled group-level effects
  *   SD: vector of standard deviation parameters
  *   L: cholesky factor correlation matrix
  * Returns:
  *   matrix of scaled group-level effects
  */
  matrix scale_r_cor(matrix z, vector SD, matrix L) {
    // r is stored in another dimension order than z
    return transpose(diag_pre_multiply(SD, L) * z);
  }
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
  int C_1[N];
  // data for group-level effects of ID 1
  int<lower=1> N_1;  // number of grouping levels
  int<lower=1> M_1;  // number of coefficients per level
  int<lower=1> J_1[N];  // grouping indicator per observation
  // group-level predictor values
  vector[N] Z_1_Asym_1;
  vector[N] Z_1_xmid_2;
  int<lower=1> NC_1;  // number of group-level correlations
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
  matrix[M_1, N_1] z_1;  // standardized group-level effects
  cholesky_factor_corr[M_1] L_1;  // cholesky factor of correlation matrix
}
transformed parameters {
  matrix[N_1, M_1] r_1;  // actual group-level effects
  // using vectors speeds up indexing in loops
  vector[N_1] r_1_Asym_1;
  vector[N_1] r_1_xmid_2;
  real lprior = 0;  // prior contributions to the log posterior
  // compute actual group-level effects
  r_1 = scale_r_cor(z_1, sd_1, L_1);
  r_1_Asym_1 = r_1[, 1];
  r_1_xmid_2 = r_1[, 2];
  lprior += normal_lpdf(b_Asym | 200, 50);
  lprior += normal_lpdf(b_xmid | 700, 200);
  lprior += normal_lpdf(b_scal | 350, 100);
  lprior += student_t_lpdf(sigma | 3, 0, 20)
    - 1 * student_t_lccdf(0 | 3, 0, 20);
  lprior += student_t_lpdf(sd_1 | 3, 0, 40)
    - 2 * student_t_lccdf(0 | 3, 0, 40);
  lprior += lkj_corr_cholesky_lpdf(L_1 | 2);
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
      // add more terms to the linear predictor
      nlp_xmid[n] += r_1_xmid_2[J_1[n]] * Z_1_xmid_2[n];
    }
    for (n in 1:N) {
      // compute non-linear predictor values
      mu[n] = nlp_Asym[n] / (1 + exp((nlp_xmid[n] - C_1[n]) / nlp_scal[n]));
    }
    target += normal_lpdf(Y | mu, sigma);
  }
  // priors including constants
  target += lprior;
  target += std_normal_lpdf(to_vector(z_1));
}
generated quantities {
  // compute group-level correlations
  corr_matrix[M_1] Cor_1 = multiply_lower_tri_self_transpose(L_1);
  vector<lower=-1,upper=1>[NC_1] cor_1;
  // extract upper diagonal of correlation matrix
  for (k in 1:M_1) {
    for (j in 1:(k - 1)) {
      cor_1[choose(k - 1, 2) + j] = Cor_1[j, k];
    }
  }
}

